// Database status conditions, built from the reason constants in src/api/database-status.ts; every
// message says what to do next. `Ready` summarises the other three.
import type { Condition } from '../../api/meta.js';
import type { AuditMode, Database } from '../../api/database.js';
import { CONDITION, REASON, type Reason } from '../../api/database-status.js';
import { SHARED_AUDIENCE, workloadAudience } from '../../api/runtime.js';
import type { AwsReason } from '../../aws/errors.js';
import type { KubeObject } from '../../kube/types.js';
import { metaTime } from '../../kube/types.js';
import { podProblem } from './pod-status.js';

/** The Helm value that pins the agents' audit mode. */
const AUDIT_ENFORCE_VALUE = 'agents.audit.enforce';

export interface ConditionState {
  type: (typeof CONDITION)[keyof typeof CONDITION];
  status: 'True' | 'False' | 'Unknown';
  /** AWS failures (CredentialsReady) carry the AWS module's reasons: AssumeRoleDenied, PolicySizeExceeded, ... */
  reason: Reason | AwsReason;
  message: string;
}

/**
 * The new condition list: a condition keeps its lastTransitionTime while its status stays the same,
 * so the timestamp says how long it has been that way.
 */
export function mergeConditions(
  previous: readonly Condition[] | undefined,
  next: readonly Pick<Condition, 'type' | 'status' | 'reason' | 'message'>[],
  generation: number | undefined,
  now = new Date(),
): Condition[] {
  return next.map((c) => {
    const old = previous?.find((p) => p.type === c.type);
    const lastTransitionTime = old && old.status === c.status ? old.lastTransitionTime : metaTime(now);
    return {
      ...c,
      lastTransitionTime,
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    };
  });
}

/** Ready is True when the other three are; otherwise it carries the first failing one's reason. */
export function readyCondition(parts: readonly ConditionState[], endpoint: string): ConditionState {
  const failing = parts.find((p) => p.status === 'False') ?? parts.find((p) => p.status !== 'True');
  if (!failing) {
    // Serving, so Ready (Argo CD: Healthy); a failing agent pod is still worth a line where people look.
    const degraded = parts.find((p) => p.reason === REASON.AgentDegraded);
    return {
      type: CONDITION.Ready,
      status: 'True',
      reason: REASON.Ready,
      message: `agent serving at ${endpoint}${degraded ? `; ${degraded.type}: ${degraded.message}` : ''}`,
    };
  }
  return {
    type: CONDITION.Ready,
    status: failing.status,
    reason: failing.reason,
    message: `${failing.type}: ${failing.message}`,
  };
}

/**
 * Whether workload tokens are scoped to this Database: False while spec.workloads.acceptSharedAudience
 * lets in tokens minted for the shared audience, which any agent accepts. Not part of Ready: the agent
 * serves either way, but people should see it (and the Warning Event) and move their workloads.
 */
export function workloadTokensCondition(db: Database, namespace: string): ConditionState {
  const audience = workloadAudience(namespace, db.metadata.name);
  if (!db.spec.workloads?.acceptSharedAudience) {
    return {
      type: CONDITION.WorkloadTokensScoped,
      status: 'True',
      reason: REASON.DatabaseAudience,
      message: `workload tokens must be for audience ${audience}`,
    };
  }
  return {
    type: CONDITION.WorkloadTokensScoped,
    status: 'False',
    reason: REASON.SharedAudienceAccepted,
    message:
      `spec.workloads.acceptSharedAudience is true: tokens for the shared audience ${SHARED_AUDIENCE} open ` +
      'sessions here, so a token a workload sends to any other Drawbridge database (or that its agent ' +
      `captures) can be replayed here as that ServiceAccount; move the workloads to audience ${audience} ` +
      '(drawbridge_tokens_shared_audience_total counts who still uses the old one) and remove the setting',
  };
}

/** AuditModeAllowed: False while spec.audit.mode asks for another mode than the one the platform enforces. */
export function auditModeCondition(
  db: Database,
  audit: { mode: AuditMode; enforce?: boolean } | undefined,
): ConditionState {
  const asked = db.spec.audit.mode;
  if (!audit?.enforce || !asked || asked === audit.mode) {
    return {
      type: CONDITION.AuditModeAllowed,
      status: 'True',
      reason: REASON.AuditModeAllowed,
      message: audit?.enforce ? `the agent's audit mode is ${audit.mode}` : 'spec.audit.mode is applied',
    };
  }
  return {
    type: CONDITION.AuditModeAllowed,
    status: 'False',
    reason: REASON.AuditModeEnforced,
    message:
      `spec.audit.mode ${asked} is ignored: the platform enforces audit mode ${audit.mode} on every agent ` +
      `(Helm value ${AUDIT_ENFORCE_VALUE}); remove spec.audit.mode from the Database, or ask the platform team`,
  };
}

interface DeploymentStatus {
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
  replicas?: number;
  readyReplicas?: number;
  updatedReplicas?: number;
  observedGeneration?: number;
}

/**
 * AgentReady from the agent Deployment's status (undefined: not created yet) and, for why its pods are
 * not ready, from theirs.
 */
export function agentCondition(
  deployment: KubeObject | undefined,
  wanted: number,
  where: string,
  pods: readonly KubeObject[] = [],
): ConditionState {
  const type = CONDITION.AgentReady;
  if (wanted === 0) {
    return {
      type,
      status: 'False',
      reason: REASON.AgentScaledToZero,
      message: 'spec.agent.replicas is 0; set it to 1 or more to serve clients',
    };
  }
  const status = (deployment?.status ?? {}) as DeploymentStatus;
  if (!deployment || status.observedGeneration === undefined) {
    return {
      type,
      status: 'Unknown',
      reason: REASON.AgentDeploying,
      message: `agent Deployment ${where} is being created`,
    };
  }
  const ready = status.readyReplicas ?? 0;
  const problem = podProblem(pods);
  if (ready >= 1) {
    // Still serving (True, as a Deployment stays Available), but a failing pod (a second replica
    // crash-looping, a roll-out stuck on a crashing pod) is AgentDegraded, named, and a Warning Event.
    return {
      type,
      status: 'True',
      reason: problem ? REASON.AgentDegraded : REASON.AgentAvailable,
      message: `${ready}/${wanted} agent replicas ready${problem ? `; ${problem.message}` : ''}`,
    };
  }
  if (problem) {
    return {
      type,
      status: 'False',
      reason: problem.reason,
      message: `0/${wanted} agent replicas ready: ${problem.message}`,
    };
  }
  // No pod to look at: the API server refused to create them (a quota, Pod Security admission).
  const refused = status.conditions?.find((c) => c.type === 'ReplicaFailure' && c.status === 'True');
  if (refused) {
    return {
      type,
      status: 'False',
      reason: REASON.AgentPodsRejected,
      message: `0/${wanted} agent replicas ready: the API server refuses the agent pods of ${where}: ${refused.message ?? refused.reason ?? 'FailedCreate'}`,
    };
  }
  return {
    type,
    status: 'False',
    reason: REASON.AgentPodsNotReady,
    message: `0/${wanted} agent replicas ready; see kubectl describe deployment ${where} and its pods' logs`,
  };
}

/** Condition fields compared for "did the status change?"; timestamps excluded. */
export function sameConditions(a: readonly Condition[] | undefined, b: readonly Condition[]): boolean {
  if (!a || a.length !== b.length) return false;
  return b.every((c, i) => {
    const o = a[i]!;
    return (
      o.type === c.type &&
      o.status === c.status &&
      o.reason === c.reason &&
      o.message === c.message &&
      o.observedGeneration === c.observedGeneration
    );
  });
}
