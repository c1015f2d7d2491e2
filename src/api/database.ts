// Database: one backend that an agent fronts.
import { z } from 'zod';
import {
  type CelRule,
  SecretKeyRef,
  SecretRef,
  celRules,
  conditions,
  duration,
  observedGeneration,
  parseDuration,
  resource,
} from './meta.js';
import { DatabaseAgent } from './database-agent.js';
import { DatabaseWorkloads } from './database-workloads.js';
import {
  AUDIT_MODES,
  AWS_TYPES,
  type AwsType,
  HOST_PORT,
  HOST_PORT_MESSAGE,
  ROLE_ARN,
  ROLE_ARN_MESSAGE,
} from './runtime.js';

export {
  AUDIT_MODES,
  AWS_TYPES,
  type AuditMode,
  type AwsType,
  type BackendAddress,
  backendAddress,
} from './runtime.js';

const PROTOCOLS = ['postgres', 'redis'] as const;
export type Protocol = (typeof PROTOCOLS)[number];

const AUTH_TYPES = [
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

const DatabaseTLS = z
  .object({
    mode: z
      .enum(['verify-full', 'verify-ca', 'insecure', 'disabled'])
      .default('verify-full')
      .describe(
        'How the agent checks the backend: verify-full (chain and host name, the default), verify-ca ' +
          '(chain only), insecure (TLS without checks), disabled (plaintext).',
      ),
    caSecretRef: SecretKeyRef.optional().describe(
      "The backend's CA bundle (PEM) in a Secret key; the system roots are used when unset.",
    ),
    serverName: z
      .string()
      .optional()
      .describe('Host name to verify the server certificate against, when it differs from the URI host.'),
  })
  .describe('TLS from the agent to the backend.');

/** Auth types that sign in with the agent's AWS identity, and the spec.aws types each works with. */
export const AWS_AUTH: Partial<Record<AuthType, readonly AwsType[]>> = {
  'rds-iam': ['rds', 'aurora'],
  redshift: ['redshift'],
  'redshift-serverless': ['redshift-serverless'],
  'elasticache-iam': ['elasticache', 'elasticache-serverless'],
  'elasticache-managed': ['elasticache', 'elasticache-serverless'],
};

const DatabaseAuth = z
  .object({
    type: z
      .enum(AUTH_TYPES)
      .describe(
        'How the agent logs in to the backend: password or mtls (from auth.secretRef), passthrough ' +
          "(the client's own credentials), or with the agent's AWS identity: rds-iam, redshift, " +
          'redshift-serverless, elasticache-iam, elasticache-managed (these need spec.aws).',
      ),
    secretRef: SecretRef.optional().describe(
      'Secret with the backend credentials. password: one key per database user, its value the password; ' +
        'to rotate a password by hand, put the new one under the user key and the old one under ' +
        '`<user>.previous` (e.g. `app` and `app.previous`): the agent tries the current password first, ' +
        'then the previous one, so sessions keep working before and after the server changes; remove ' +
        '`<user>.previous` once the server has the new password. mtls: keys `tls.crt` and `tls.key`.',
    ),
  })
  .describe('How the agent authenticates to the backend.');

const DatabaseAWS = z
  .object({
    type: z
      .enum(AWS_TYPES)
      .describe(
        'The AWS service: rds, aurora, redshift, redshift-serverless, elasticache, elasticache-serverless.',
      ),
    // Region, identifiers and role ARN go into the IAM policy the controller prints or attaches: a `*`
    // or `?` there would grant every database (or role) it matches, not this one; AWS names none so.
    region: z
      .string()
      .max(32)
      .regex(/^[a-z]{2}(-[a-z]+)+-\d{1,2}$/, 'must be an AWS region such as eu-west-1')
      .describe('AWS region of the database, e.g. eu-west-1.'),
    accountId: z
      .string()
      .regex(/^\d{12}$/, 'must be a 12-digit AWS account ID')
      .optional()
      .describe('The 12-digit AWS account that owns the database.'),
    identifiers: z
      .record(
        z.string(),
        z
          .string()
          .regex(/^[^*?$]*$/, 'must name one AWS resource: no "*", "?" or "$" (IAM wildcards, variables)'),
      )
      .optional()
      .describe(
        'Names AWS knows the database by, by kind: instance, cluster, resourceId, replicationGroup, ' +
          'serverlessCache, workgroup, endpoint. Discovery fills these in.',
      ),
    assumeRoleArn: z
      .string()
      .regex(ROLE_ARN, ROLE_ARN_MESSAGE)
      .optional()
      .describe("IAM role to assume (after the agent's own identity) for this database's AWS calls."),
    externalId: z.string().optional().describe('External ID the assumed role requires, if any.'),
  })
  .describe('Where the database lives in AWS; needed by the AWS auth types.');

const DatabaseRedis = z
  .object({
    commandTimeout: duration
      .refine((d) => parseDuration(d) >= 100, 'must be at least 100ms')
      .meta(celRules([{ rule: "duration(self) >= duration('100ms')", message: 'must be at least 100ms' }]))
      .optional()
      .describe(
        'Redis Cluster: how long a node may send nothing while commands are in flight before the agent ' +
          'gives up on it (default 30s). Each reply restarts the clock (like envoy op_timeout); on expiry ' +
          'the waiting commands fail with a "timed out" error and the connection is replaced. Blocking ' +
          'commands (BLPOP, XREAD BLOCK, ...) get their own timeout plus this.',
      ),
    seedNodes: z
      .array(z.string().max(262).regex(HOST_PORT, HOST_PORT_MESSAGE))
      .max(16)
      .optional()
      .describe(
        "Redis Cluster: more of its nodes (host:port) to learn the cluster's shape from when the node in " +
          'spec.uri does not answer (hung, restarting); the first to answer wins, and the agent follows the ' +
          'nodes the cluster names after that.',
      ),
  })
  .describe('Redis-specific settings.');

/** Audit values (statements, parameters) longer than this many characters are cut by default. */
export const DEFAULT_MAX_AUDIT_VALUE = 4096;

const DatabaseAudit = z
  .object({
    maxValueLength: z
      .number()
      .int()
      .min(256)
      .max(1 << 20)
      .default(DEFAULT_MAX_AUDIT_VALUE)
      .describe(
        'Statements, parameter values and Redis command arguments longer than this (characters for ' +
          'statements, bytes for the others) are cut in audit events, which then give the full size and ' +
          'the SHA-256 of the whole value (hex), so it can still be matched.',
      ),
    mode: z
      .enum(AUDIT_MODES)
      .optional()
      .describe(
        "When the agent's audit log fails or falls behind: required (the default unless the agent's own " +
          'setting says otherwise) holds the sessions (they stop reading client input) until it catches up ' +
          'and ends them after stallTimeout; best-effort lets sessions go on and drops events past the ' +
          'buffer, counting them in drawbridge_audit_events_dropped_total. Ignored when the platform ' +
          'enforces its own mode (Helm agents.audit.enforce): AuditModeAllowed says so.',
      ),
    stallTimeout: duration
      .refine((d) => parseDuration(d) >= 1000, 'must be at least 1s')
      .optional()
      .describe(
        'Required mode: how long sessions wait for a stuck audit log before they are ended (default 30s).',
      ),
  })
  .describe('What the audit log records for this database.');

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

const SEEDS_NEED_CLUSTER =
  'seed nodes are for Redis Cluster: add ?mode=cluster to spec.uri, or remove spec.redis.seedNodes';

/** The zod checks below, written again in CEL for the API server (test/integration/operator/crd.test.ts keeps them in step). */
const SPEC_RULES: CelRule[] = [
  {
    rule: "self.protocol == 'postgres' ? self.uri.matches('^postgres(ql)?://') : self.uri.matches('^rediss?://')",
    message: 'the scheme of spec.uri does not match spec.protocol',
    messageExpression:
      "'scheme of spec.uri does not match protocol \"' + self.protocol + '\": use ' + " +
      "(self.protocol == 'postgres' ? 'postgres:// or postgresql://' : 'redis:// or rediss://')",
    fieldPath: '.uri',
  },
  {
    rule: "self.protocol != 'redis' || self.uri.matches('^[a-z]+://[^/?]*(/[0-9]*)?([?].*)?$')",
    message: 'the path of a Redis URI is the DB number: use e.g. redis://host:6379/3, or no path for DB 0',
    fieldPath: '.uri',
  },
  {
    rule:
      "self.protocol != 'redis' || !self.uri.matches('[?&]mode=cluster(&|$)') || " +
      "self.uri.matches('^[a-z]+://[^/?]*(/0*)?([?].*)?$')",
    message:
      'Redis Cluster has only DB 0: remove the DB number from the URI (or drop mode=cluster for a standalone server)',
    fieldPath: '.uri',
  },
  {
    rule: "!has(self.redis) || !has(self.redis.seedNodes) || self.uri.matches('[?&]mode=cluster(&|$)')",
    message: SEEDS_NEED_CLUSTER,
    fieldPath: '.redis.seedNodes',
  },
  {
    rule: "!(self.auth.type in ['password', 'mtls']) || has(self.auth.secretRef)",
    message: 'auth types password and mtls need auth.secretRef naming a Secret',
    messageExpression: "'auth type \"' + self.auth.type + '\" needs auth.secretRef naming a Secret'",
    fieldPath: '.auth',
  },
  {
    rule: `!(self.auth.type in ${cel(Object.keys(AWS_AUTH))}) || has(self.aws)`,
    message: 'AWS auth types need spec.aws',
    messageExpression:
      "'auth type \"' + self.auth.type + '\" signs in with AWS: set spec.aws (type, region, identifiers; discovery fills these in)'",
    fieldPath: '.auth',
  },
  {
    rule:
      `!has(self.aws) || !(self.auth.type in ${cel(Object.keys(AWS_AUTH))}) || ` +
      `self.aws.type in ${celMap(AWS_AUTH)}[self.auth.type]`,
    message: 'auth.type does not work with aws.type',
    messageExpression:
      "'auth type \"' + self.auth.type + '\" does not work with aws.type \"' + self.aws.type + '\": use aws.type ' + " +
      `${celMap(Object.fromEntries(Object.entries(AWS_AUTH).map(([k, v]) => [k, v.join(' or ')])))}[self.auth.type]`,
    fieldPath: '.aws.type',
  },
  {
    rule: "!has(self.aws) || self.protocol == (self.aws.type.startsWith('elasticache') ? 'redis' : 'postgres')",
    message: 'aws.type does not match protocol',
    messageExpression:
      "'aws.type \"' + self.aws.type + '\" is a ' + (self.aws.type.startsWith('elasticache') ? 'redis' : 'postgres') + " +
      "' database: set protocol to match'",
    fieldPath: '.protocol',
  },
];

export const DatabaseSpec = z
  .object({
    protocol: z.enum(PROTOCOLS).describe('Wire protocol of the backend: postgres or redis.'),
    uri: z
      .string()
      .max(2048)
      .regex(uriPattern, 'must look like postgres://host:5432 or rediss://host:6379?mode=cluster')
      .describe(
        'Where the backend is: postgres://host:5432, redis://host:6379/3 (DB 3), ' +
          'rediss://host:6379?mode=cluster (Redis Cluster; one node is enough).',
      ),
    tls: DatabaseTLS.default({ mode: 'verify-full' }),
    auth: DatabaseAuth.default({ type: 'password' }),
    aws: DatabaseAWS.optional(),
    agent: DatabaseAgent.default({ replicas: 1, serviceType: 'ClusterIP' }),
    redis: DatabaseRedis.optional(),
    audit: DatabaseAudit.default({ maxValueLength: DEFAULT_MAX_AUDIT_VALUE }),
    workloads: DatabaseWorkloads.optional(),
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
    if (spec.redis?.seedNodes && !/[?&]mode=cluster(&|$)/.test(spec.uri)) {
      ctx.addIssue({ code: 'custom', path: ['redis', 'seedNodes'], message: SEEDS_NEED_CLUSTER });
    }
    if ((spec.auth.type === 'password' || spec.auth.type === 'mtls') && !spec.auth.secretRef) {
      ctx.addIssue({
        code: 'custom',
        path: ['auth', 'secretRef'],
        message: `auth type "${spec.auth.type}" needs auth.secretRef naming a Secret`,
      });
    }
    checkAws(spec, ctx);
  })
  .meta({
    ...celRules(SPEC_RULES),
    description: 'One backend database that an agent fronts.',
  });

function checkAws(
  spec: Pick<z.output<typeof DatabaseSpec>, 'auth' | 'aws' | 'protocol'>,
  ctx: z.RefinementCtx,
): void {
  const awsTypes = AWS_AUTH[spec.auth.type];
  if (awsTypes && !spec.aws) {
    ctx.addIssue({
      code: 'custom',
      path: ['aws'],
      message: `auth type "${spec.auth.type}" signs in with AWS: set spec.aws (type, region, identifiers; discovery fills these in)`,
    });
  }
  if (!spec.aws) return;
  if (awsTypes && !awsTypes.includes(spec.aws.type)) {
    ctx.addIssue({
      code: 'custom',
      path: ['aws', 'type'],
      message: `auth type "${spec.auth.type}" does not work with aws.type "${spec.aws.type}": use aws.type ${awsTypes.join(' or ')}`,
    });
  }
  const protocol = spec.aws.type.startsWith('elasticache') ? 'redis' : 'postgres';
  if (spec.protocol !== protocol) {
    ctx.addIssue({
      code: 'custom',
      path: ['protocol'],
      message: `aws.type "${spec.aws.type}" is a ${protocol} database: set protocol to match`,
    });
  }
}

/** A CEL list literal of strings. */
function cel(values: readonly string[]): string {
  return `[${values.map((v) => `'${v}'`).join(', ')}]`;
}

/** A CEL map literal from string keys to strings or string lists. */
function celMap(map: Record<string, string | readonly string[] | undefined>): string {
  const value = (v: string | readonly string[] | undefined) =>
    typeof v === 'string' ? `'${v}'` : cel(v ?? []);
  return `{${Object.entries(map)
    .map(([k, v]) => `'${k}': ${value(v)}`)
    .join(', ')}}`;
}

export const DatabaseStatus = z
  .object({
    conditions,
    endpoint: z
      .string()
      .optional()
      .describe('host:port of the agent inside the cluster (its Service), where clients connect.'),
    observedGeneration,
    access: z
      .object({
        users: z
          .number()
          .int()
          .describe('DatabaseUsers in this namespace with a role that may reach this database.'),
        roles: z.number().int().describe('AccessRoles in this namespace that may reach this database.'),
      })
      .optional()
      .describe('Who may reach this database (counts; `kubectl db ls` lists the details for you).'),
  })
  .describe('What the controller observed: conditions, the endpoint, who may reach it.');

export const Database = resource('Database', DatabaseSpec, DatabaseStatus);
export type Database = z.infer<typeof Database>;
export type DatabaseSpec = z.infer<typeof DatabaseSpec>;
export type DatabaseStatus = z.infer<typeof DatabaseStatus>;

/** Secrets the agent reads through the API: backend credentials and the backend CA. */
export function referencedSecrets(db: Database): string[] {
  const names = [db.spec.auth.secretRef?.name, db.spec.tls.caSecretRef?.name].filter((n): n is string => !!n);
  return [...new Set(names)].sort();
}
