// The controller's settings file, `drawbridge controller --config FILE`. The Helm chart writes it from
// its `aws.*` values into a ConfigMap mounted at /etc/drawbridge/controller.yaml
// (charts/drawbridge/templates/configmap.yaml): keep the two in step. Validated once at start-up with
// defaults applied, so the controller works with complete values; unknown keys are errors, because a
// misspelt `tag:` would otherwise enrol every database in the account.
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { z } from 'zod';
import { AWS_TYPES } from './database.js';
import { DEFAULT_FORBIDDEN_POD_METADATA_KEYS, agentPodShape, podMetadataKeyGlob } from './database-agent.js';
import { AUDIT_MODES } from './database.js';
import { duration, objectName, parseDuration } from './meta.js';
import { ROLE_ARN, ROLE_ARN_MESSAGE } from './runtime.js';
import { parseOrThrow, yamlSyntaxError } from './validate.js';

const IAM_BOOTSTRAP_MODES = ['off', 'print', 'attach'] as const;
export type IamBootstrapMode = (typeof IAM_BOOTSTRAP_MODES)[number];

/** Unknown keys name the keys that are allowed, so the fix is in the message. */
function strict<T extends z.ZodRawShape>(shape: T) {
  const known = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) =>
      issue.code === 'unrecognized_keys'
        ? `unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}; allowed: ${known}`
        : undefined,
  });
}

const interval = (min: string) =>
  duration.refine((v) => parseDuration(v) >= parseDuration(min), `must be at least ${min}`);

/** One discovery matcher: which AWS databases to enrol (evaluated by src/aws/matchers.ts). */
export const AwsMatcher = z.object({
  types: z.array(z.enum(AWS_TYPES)).min(1),
  regions: z.array(z.string().min(1)).min(1),
  /** Tag key → glob(s) the tag value must match; `'*': '*'` (the default) matches everything. */
  tags: z.record(z.string(), z.union([z.string(), z.array(z.string())])).default({ '*': '*' }),
  // Discovered Databases carry it: the Database schema's rule, checked at start-up instead.
  assumeRoleArn: z.string().regex(ROLE_ARN, ROLE_ARN_MESSAGE).optional(),
  externalId: z.string().optional(),
});
export type AwsMatcher = z.infer<typeof AwsMatcher>;

const DEFAULT_ROTATION = '15m';

export const ControllerAwsConfig = strict({
  /** Which AWS databases become Database objects; discovery is off when empty. */
  matchers: z.array(strict(AwsMatcher.shape)).default([]),
  /** How often AWS is listed. */
  discoveryInterval: interval('1s').default('5m'),
  /** Namespace the discovered Databases are created in (default: the controller's own). */
  namespace: objectName.optional(),
  /**
   * The namespaces whose AWS Databases get the controller's AWS identities: the agents' default role,
   * coverage by the IAM policy it prints or attaches, and role assumption by the controller itself.
   * Empty: every namespace. The discovery namespace is always included (its Databases are the
   * controller's own).
   */
  namespaces: z.array(objectName).default([]),
  /** `attach`: put the needed policy on the controller's own IAM role; `print`: log it; `off`. */
  iamBootstrap: z.enum(IAM_BOOTSTRAP_MODES).default('print'),
  /** ElastiCache users tagged drawbridge.dev/managed=true (auth type elasticache-managed). */
  managedUsers: strict({ rotationInterval: interval('1m').default(DEFAULT_ROTATION) }).default({
    rotationInterval: DEFAULT_ROTATION,
  }),
  /** Switch IAM database authentication on for discovered RDS/Aurora databases that lack it. */
  enableIamAuth: z.boolean().default(false),
  /**
   * The Secret (in the discovered Databases' namespace) holding the Amazon RDS CA bundle
   * (https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem): discovered RDS/Aurora
   * Databases verify their server against it. Without it they report RDSCABundleMissing.
   */
  rdsCaSecretRef: strict({ name: objectName, key: z.string().min(1).default('ca.crt') }).optional(),
});
export type ControllerAwsConfig = z.infer<typeof ControllerAwsConfig>;

/**
 * The namespaces whose Databases may use the controller's AWS identities: aws.namespaces plus the
 * discovery namespace (default: the controller's own); empty, as aws.namespaces: every namespace.
 */
export function allowedAwsNamespaces(
  aws: ControllerAwsConfig | undefined,
  controllerNamespace: string,
): string[] {
  if (!aws?.namespaces.length) return [];
  return [...new Set([...aws.namespaces, aws.namespace ?? controllerNamespace])];
}

const labelSelector = strict({
  matchLabels: z.record(z.string(), z.string()).optional(),
  matchExpressions: z.array(z.record(z.string(), z.unknown())).optional(),
});
/** A networking.k8s.io/v1 NetworkPolicyPeer: pods, namespaces (both: those pods in those namespaces) or addresses. */
const NetworkPolicyPeer = strict({
  podSelector: labelSelector.optional(),
  namespaceSelector: labelSelector.optional(),
  ipBlock: strict({ cidr: z.string().min(1), except: z.array(z.string()).optional() }).optional(),
}).refine(
  (p) => p.podSelector || p.namespaceSelector || p.ipBlock,
  'set podSelector, namespaceSelector or ipBlock',
);
export type NetworkPolicyPeer = z.infer<typeof NetworkPolicyPeer>;

/**
 * A NetworkPolicy beside every agent (Helm networkPolicy.*; present means enabled): the listener only
 * from `clients` (empty: from anywhere) and the agent's other replicas, metrics only from `metricsFrom`.
 */
const AgentNetworkPolicy = strict({
  clients: z.array(NetworkPolicyPeer).default([]),
  // At least one: an empty `from` would let everyone in.
  metricsFrom: z.array(NetworkPolicyPeer).min(1),
});
export type AgentNetworkPolicy = z.infer<typeof AgentNetworkPolicy>;

/** Settings for the agents the controller runs (Helm values agents.*). */
const ControllerAgentsConfig = strict({
  aws: strict({
    /**
     * IAM role (EKS IRSA) for the agents of AWS Databases, written to their ServiceAccounts as
     * eks.amazonaws.com/role-arn unless a Database sets spec.agent.serviceAccountAnnotations.
     */
    roleArn: z
      .string()
      .regex(/^arn:aws[\w-]*:iam::\d{12}:role\/\S+$/, 'must be an IAM role ARN')
      .optional(),
    /**
     * EKS Pod Identity associations give the agent ServiceAccounts (drawbridge-<database>) their role:
     * no annotation is needed, and none is required before an AWS Database reports ready.
     */
    podIdentity: z.boolean().default(false),
  }).default({ podIdentity: false }),
  /** Pod and Service settings for every agent (nodeSelector, tolerations, resources, ...); spec.agent wins. */
  pod: strict(agentPodShape).optional(),
  /**
   * Label and annotation keys (globs) a Database's spec.agent.podLabels / podAnnotations may not set:
   * the agent's stdout is the audit log, and these keys tell log collectors to skip or reshape it.
   * agents.pod (the platform's own) may set them.
   */
  forbiddenPodMetadataKeys: z.array(podMetadataKeyGlob).default([...DEFAULT_FORBIDDEN_POD_METADATA_KEYS]),
  networkPolicy: AgentNetworkPolicy.optional(),
  /** The agents' audit mode and stall timeout where a Database's spec.audit sets none. */
  audit: strict({
    mode: z.enum(AUDIT_MODES).default('required'),
    stallTimeout: interval('1s').default('30s'),
    /** The mode is the platform's: agents ignore a Database's spec.audit.mode (AuditModeAllowed says so). */
    enforce: z.boolean().default(false),
  }).optional(),
});
type ControllerAgentsConfig = z.infer<typeof ControllerAgentsConfig>;

const ControllerConfig = strict({
  aws: ControllerAwsConfig.optional(),
  agents: ControllerAgentsConfig.optional(),
});
type ControllerConfig = z.infer<typeof ControllerConfig>;

/** Parses the YAML text; `source` names the file in errors. */
export function parseControllerConfig(text: string, source: string): ControllerConfig {
  let value: unknown;
  try {
    value = parse(text, { prettyErrors: false }) ?? {};
  } catch (err) {
    throw yamlSyntaxError(source, text, err);
  }
  return parseOrThrow(ControllerConfig, value, source);
}

export async function loadControllerConfig(path: string): Promise<ControllerConfig> {
  return parseControllerConfig(await readFile(path, 'utf8'), path);
}
