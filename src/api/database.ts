// Database: one backend that an agent fronts.
import { z } from 'zod';
import { Condition, SecretKeyRef, SecretRef, duration, parseDuration, resource } from './meta.js';

export const PROTOCOLS = ['postgres', 'redis'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

export const AWS_TYPES = [
  'rds',
  'aurora',
  'redshift',
  'redshift-serverless',
  'elasticache',
  'elasticache-serverless',
] as const;
export type AwsType = (typeof AWS_TYPES)[number];

export const AUTH_TYPES = [
  'password',
  'mtls',
  'rds-iam',
  'redshift',
  'redshift-serverless',
  'elasticache-iam',
  'elasticache-managed',
  'passthrough',
] as const;
export type AuthType = (typeof AUTH_TYPES)[number];

export const DatabaseTLS = z.object({
  /** verify-full checks chain and host name; verify-ca the chain only; insecure skips checks; disabled is plaintext. */
  mode: z.enum(['verify-full', 'verify-ca', 'insecure', 'disabled']).default('verify-full'),
  caSecretRef: SecretKeyRef.optional(),
  serverName: z.string().optional(),
});

export const DatabaseAuth = z.object({
  type: z.enum(AUTH_TYPES),
  secretRef: SecretRef.optional().describe(
    'Secret with the backend credentials. password: one key per database user, its value the password; ' +
      'to rotate a password by hand, put the new one under the user key and the old one under ' +
      '`<user>.previous` (e.g. `app` and `app.previous`): the agent tries the current password first, ' +
      'then the previous one, so sessions keep working before and after the server changes; remove ' +
      '`<user>.previous` once the server has the new password. mtls: keys `tls.crt` and `tls.key`.',
  ),
});

export const DatabaseAWS = z.object({
  type: z.enum(AWS_TYPES),
  region: z.string().min(1),
  accountId: z
    .string()
    .regex(/^\d{12}$/, 'must be a 12-digit AWS account ID')
    .optional(),
  /** Instance, cluster, replication group, workgroup or serverless cache names, by kind. */
  identifiers: z.record(z.string(), z.string()).optional(),
  assumeRoleArn: z
    .string()
    .startsWith('arn:', 'must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)')
    .optional(),
  externalId: z.string().optional(),
});

export const DatabaseRedis = z.object({
  commandTimeout: duration
    .refine((d) => parseDuration(d) >= 100, 'must be at least 100ms')
    .optional()
    .describe(
      'Redis Cluster: how long a node may send nothing while commands are in flight before the agent ' +
        'gives up on it (default 30s). Each reply restarts the clock (like envoy op_timeout); on expiry ' +
        'the waiting commands fail with a "timed out" error and the connection is replaced. Blocking ' +
        'commands (BLPOP, XREAD BLOCK, ...) get their own timeout plus this.',
    ),
});

export const DatabaseAgent = z.object({
  replicas: z.number().int().min(0).max(100).default(1),
  resources: z
    .object({
      requests: z.record(z.string(), z.string()).optional(),
      limits: z.record(z.string(), z.string()).optional(),
    })
    .optional(),
  serviceType: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer']).default('ClusterIP'),
  serviceAccountAnnotations: z
    .record(z.string(), z.string())
    .optional()
    .describe(
      "Annotations on the agent's ServiceAccount, e.g. eks.amazonaws.com/role-arn: the IAM role (EKS IRSA) " +
        'the agent of an AWS Database signs in with. Overrides the controller-wide agents.aws.roleArn.',
    ),
});

/** Audit values (statements, parameters) longer than this many characters are cut by default. */
export const DEFAULT_MAX_AUDIT_VALUE = 4096;

export const DatabaseAudit = z.object({
  maxValueLength: z
    .number()
    .int()
    .min(256)
    .max(1 << 20)
    .default(DEFAULT_MAX_AUDIT_VALUE)
    .describe(
      'Statements and parameter values longer than this many characters are cut in audit events, which ' +
        'then give the full size and the SHA-256 of the whole value (hex), so it can still be matched.',
    ),
});

const uriPattern = /^(postgres|postgresql|redis|rediss):\/\/[^/\s:]+(:\d+)?(\/[^\s?]*)?(\?\S*)?$/;

/** A Redis URI's path is the DB number (`redis://host:6379/3`); Redis Cluster has DB 0 only. */
function checkRedisDatabase(uri: string, ctx: z.RefinementCtx): void {
  const [, db = '', query = ''] = /^[a-z]+:\/\/[^/?]*\/?([^?]*)\??(.*)$/.exec(uri) ?? [];
  if (db === '') return;
  if (!/^\d+$/.test(db)) {
    ctx.addIssue({
      code: 'custom',
      path: ['uri'],
      message: `"/${db}" is not a Redis DB number: use e.g. redis://host:6379/3, or no path for DB 0`,
    });
  } else if (Number(db) !== 0 && new URLSearchParams(query).get('mode') === 'cluster') {
    ctx.addIssue({
      code: 'custom',
      path: ['uri'],
      message: `Redis Cluster has only DB 0: remove "/${db}" from the URI (or drop mode=cluster for a standalone server)`,
    });
  }
}

export const DatabaseSpec = z
  .object({
    protocol: z.enum(PROTOCOLS),
    uri: z
      .string()
      .regex(uriPattern, 'must look like postgres://host:5432 or rediss://host:6379?mode=cluster'),
    tls: DatabaseTLS.default({ mode: 'verify-full' }),
    auth: DatabaseAuth.default({ type: 'password' }),
    aws: DatabaseAWS.optional(),
    agent: DatabaseAgent.default({ replicas: 1, serviceType: 'ClusterIP' }),
    redis: DatabaseRedis.optional(),
    audit: DatabaseAudit.default({ maxValueLength: DEFAULT_MAX_AUDIT_VALUE }),
  })
  .superRefine((spec, ctx) => {
    const scheme = spec.uri.split(':', 1)[0] ?? '';
    const expected = spec.protocol === 'postgres' ? ['postgres', 'postgresql'] : ['redis', 'rediss'];
    if (!expected.includes(scheme)) {
      ctx.addIssue({
        code: 'custom',
        path: ['uri'],
        message: `scheme "${scheme}" does not match protocol "${spec.protocol}": use ${expected.join(' or ')}://`,
      });
    }
    if (spec.protocol === 'redis') checkRedisDatabase(spec.uri, ctx);
    if ((spec.auth.type === 'password' || spec.auth.type === 'mtls') && !spec.auth.secretRef) {
      ctx.addIssue({
        code: 'custom',
        path: ['auth', 'secretRef'],
        message: `auth type "${spec.auth.type}" needs auth.secretRef naming a Secret`,
      });
    }
  });

export const DatabaseStatus = z.object({
  conditions: z.array(Condition).optional(),
  endpoint: z.string().optional(),
  observedGeneration: z.number().int().optional(),
});

export const Database = resource('Database', DatabaseSpec, DatabaseStatus);
export type Database = z.infer<typeof Database>;
export type DatabaseSpec = z.infer<typeof DatabaseSpec>;
export type DatabaseStatus = z.infer<typeof DatabaseStatus>;

/** Backend address from spec.uri, plus whether the URI asks for Redis Cluster mode. */
export interface BackendAddress {
  host: string;
  port: number;
  tlsInUri: boolean;
  cluster: boolean;
  database?: string;
}

export function backendAddress(spec: Pick<DatabaseSpec, 'uri' | 'protocol'>): BackendAddress {
  const url = new URL(spec.uri);
  const defaultPort = spec.protocol === 'postgres' ? 5432 : 6379;
  const path = decodeURIComponent(url.pathname.replace(/^\//, ''));
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : defaultPort,
    tlsInUri: url.protocol === 'rediss:',
    cluster: url.searchParams.get('mode') === 'cluster',
    ...(path ? { database: path } : {}),
  };
}
