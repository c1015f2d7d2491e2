// The AWS identity of an in-cluster agent. Agents of AWS Databases sign in to AWS themselves (IAM
// auth tokens, Redshift credentials, managed-user passwords in Secrets Manager), so their
// ServiceAccount needs an IAM role: EKS IRSA reads it from the eks.amazonaws.com/role-arn annotation
// and injects web-identity credentials into pods created after it is set. The role comes from the
// Database (spec.agent.serviceAccountAnnotations) or the controller-wide default (Helm value
// agents.aws.roleArn). Without one the agent would only fail at connect time, so the Database says
// so in its status first — unless the cluster gives the role itself (EKS Pod Identity associations,
// Helm value agents.aws.podIdentity), which leaves nothing on the ServiceAccount to check.
import type { AuthType, Database } from '../../api/database.js';
import { GROUP } from '../../api/meta.js';
import { CONDITION, REASON } from '../../api/database-status.js';
import type { ConditionState } from './conditions.js';

const IRSA_ROLE_ANNOTATION = 'eks.amazonaws.com/role-arn';
/** On the agent pod template: the role, so a changed role rolls the pods (IRSA acts at pod creation). */
export const ANNOTATION_AGENT_ROLE = `${GROUP}/aws-role-arn`;

/** Auth types whose agent calls AWS with its own identity. */
const AWS_AUTH_TYPES: ReadonlySet<AuthType> = new Set([
  'rds-iam',
  'redshift',
  'redshift-serverless',
  'elasticache-iam',
  'elasticache-managed',
]);

function needsAwsIdentity(db: Database): boolean {
  return AWS_AUTH_TYPES.has(db.spec.auth.type);
}

/**
 * Whether a namespace's Databases may use the controller's AWS identities (Helm value aws.namespaces;
 * empty: every namespace). Outside it a Database gets no default agent role, no place in the IAM policy
 * and no role assumed by the controller on its behalf: whoever may create a Database there would
 * otherwise hold all three (README, "AWS in a cluster shared by teams").
 */
export function awsNamespaceAllowed(allowed: readonly string[] | undefined, namespace: string): boolean {
  return !allowed?.length || allowed.includes(namespace);
}

/** The controller-wide agent role (agents.aws.roleArn) if the Database's namespace may have it. */
export function defaultAgentRole(
  namespace: string,
  settings: { awsRoleArn?: string; awsNamespaces?: readonly string[] },
): string | undefined {
  return awsNamespaceAllowed(settings.awsNamespaces, namespace) ? settings.awsRoleArn : undefined;
}

/**
 * The agents' shared role (agents.aws.roleArn) when the namespace may not have it: a Database there
 * naming it in spec.agent.serviceAccountAnnotations would otherwise have the controller write onto its
 * ServiceAccount the very role aws.namespaces withholds (only its trust policy would stand between).
 */
export function withheldAgentRole(
  namespace: string,
  settings: { awsRoleArn?: string; awsNamespaces?: readonly string[] },
): string | undefined {
  return awsNamespaceAllowed(settings.awsNamespaces, namespace) ? undefined : settings.awsRoleArn;
}

/**
 * CredentialsReady=False when an AWS Database outside aws.namespaces would need the controller's AWS
 * identities; else undefined. An agent role of its own (or one associated by EKS Pod Identity) serves,
 * except for managed ElastiCache users, whose passwords the controller itself rotates; the agents'
 * shared role (`sharedRoleArn`) named as its own does not.
 */
export function awsNamespaceCondition(
  db: Database,
  namespace: string,
  allowed: readonly string[] | undefined,
  podIdentity = false,
  sharedRoleArn?: string,
): ConditionState | undefined {
  if (awsNamespaceAllowed(allowed, namespace) || (!db.spec.aws && !needsAwsIdentity(db))) return undefined;
  const managed = db.spec.auth.type === 'elasticache-managed';
  const borrowed = sameRole(db.spec.agent.serviceAccountAnnotations?.[IRSA_ROLE_ANNOTATION], sharedRoleArn);
  if (!managed && (podIdentity || agentRoleArn(db, undefined, sharedRoleArn))) return undefined;
  const fix = managed
    ? `add ${namespace} to the Helm value aws.namespaces (the controller rotates managed ElastiCache ` +
      'users itself)'
    : `add ${namespace} to the Helm value aws.namespaces, or give this Database an IAM role of its own ` +
      `in spec.agent.serviceAccountAnnotations["${IRSA_ROLE_ANNOTATION}"] (trusted for this namespace ` +
      'alone, with the policy from `drawbridge iam print --agents`)';
  return {
    type: CONDITION.CredentialsReady,
    status: 'False',
    reason: REASON.AWSNamespaceNotAllowed,
    message:
      `namespace ${namespace} is not in the Helm value aws.namespaces, so the controller lends this ` +
      `Database none of its AWS identities (the agents' default role, its IAM policy, assuming ` +
      `spec.aws.assumeRoleArn)${borrowed ? ", nor the agents' role named in spec.agent.serviceAccountAnnotations" : ''}: ${fix}`,
  };
}

/** IAM role names are unique regardless of case. */
function sameRole(a: string | undefined, b: string | undefined): boolean {
  return !!a && !!b && a.toLowerCase() === b.toLowerCase();
}

/**
 * The agent ServiceAccount's annotations: the default role for AWS Databases, then the Database's own,
 * less a role naming `withheld` (withheldAgentRole).
 */
export function agentServiceAccountAnnotations(
  db: Database,
  defaultRoleArn: string | undefined,
  withheld?: string,
): Record<string, string> {
  const defaults: Record<string, string> =
    needsAwsIdentity(db) && defaultRoleArn ? { [IRSA_ROLE_ANNOTATION]: defaultRoleArn } : {};
  const own = { ...db.spec.agent.serviceAccountAnnotations };
  if (sameRole(own[IRSA_ROLE_ANNOTATION], withheld)) delete own[IRSA_ROLE_ANNOTATION];
  return { ...defaults, ...own };
}

/** The IAM role the agent's pods run as, if any. */
export function agentRoleArn(
  db: Database,
  defaultRoleArn: string | undefined,
  withheld?: string,
): string | undefined {
  return agentServiceAccountAnnotations(db, defaultRoleArn, withheld)[IRSA_ROLE_ANNOTATION] || undefined;
}

/** CredentialsReady=False when an AWS Database's agent would have no AWS identity; else undefined. */
export function agentIdentityCondition(
  db: Database,
  defaultRoleArn: string | undefined,
  podIdentity = false,
): ConditionState | undefined {
  if (podIdentity || !needsAwsIdentity(db) || agentRoleArn(db, defaultRoleArn)) return undefined;
  return {
    type: CONDITION.CredentialsReady,
    status: 'False',
    reason: REASON.AgentIdentityMissing,
    message:
      `auth type ${db.spec.auth.type} needs an AWS identity for the agent, and its ServiceAccount has no ` +
      `${IRSA_ROLE_ANNOTATION}: set the Helm value agents.aws.roleArn (every AWS Database's agent) or ` +
      `spec.agent.serviceAccountAnnotations["${IRSA_ROLE_ANNOTATION}"] on this Database to an IAM role ` +
      'with the policy from `drawbridge iam print --agents`; with EKS Pod Identity, associate the role ' +
      'with the agent ServiceAccount and set agents.aws.podIdentity=true',
  };
}
