// A Database's status: patched only when it changed, and the Events its condition transitions tell
// (each once, when it turns, not on every reconcile).
import type { Condition } from '../../api/meta.js';
import { CONDITION, REASON } from '../../api/database-status.js';
import type { KubeObject } from '../../kube/types.js';
import type { ObjectWriter } from '../../kube/writer.js';
import type { EventSink } from '../events.js';
import { type ConditionState, mergeConditions, sameConditions } from './conditions.js';

export interface DatabaseAccess {
  users: number;
  roles: number;
}

interface DatabaseStatus {
  conditions?: Condition[];
  endpoint?: string;
  observedGeneration?: number;
  access?: DatabaseAccess;
}

export class DatabaseStatusWriter {
  constructor(
    private readonly writer: ObjectWriter,
    private readonly events: EventSink,
  ) {}

  async write(
    raw: KubeObject,
    next: ConditionState[],
    endpoint: string | undefined,
    access?: DatabaseAccess,
  ): Promise<void> {
    const old = (raw.status ?? {}) as DatabaseStatus;
    const generation = raw.metadata.generation;
    const conditions = mergeConditions(old.conditions, next, generation);
    if (
      sameConditions(old.conditions, conditions) &&
      old.endpoint === endpoint &&
      old.observedGeneration === generation &&
      old.access?.users === access?.users &&
      old.access?.roles === access?.roles
    ) {
      return;
    }
    const status: DatabaseStatus = {
      conditions,
      observedGeneration: generation,
      ...(endpoint ? { endpoint } : {}),
      ...(access ? { access } : {}),
    };
    await this.writer.mergePatch('Database', raw.metadata.name, raw.metadata.namespace, { status }, 'status');
    this.recordReadyTransition(raw, old.conditions, conditions[0]!);
    this.recordDegraded(raw, old.conditions, conditions);
    this.recordNamespaceRefused(raw, old.conditions, conditions);
    this.recordSharedAudience(raw, old.conditions, conditions);
    this.recordRefusal(raw, old.conditions, conditions, CONDITION.PodMetadataAllowed);
    this.recordRefusal(raw, old.conditions, conditions, CONDITION.AuditModeAllowed);
  }

  /**
   * Told when PodMetadataAllowed / AuditModeAllowed turns False, and again when what it names (the
   * keys, the modes) changes.
   */
  private recordRefusal(
    raw: KubeObject,
    old: Condition[] | undefined,
    next: Condition[],
    type: string,
  ): void {
    const now = next.find((c) => c.type === type);
    if (now?.status !== 'False') return;
    if (old?.find((c) => c.type === type)?.message === now.message) return;
    this.events.record(raw, 'Warning', now.reason, now.message);
  }

  /** Told once, when WorkloadTokensScoped turns SharedAudienceAccepted. */
  private recordSharedAudience(raw: KubeObject, old: Condition[] | undefined, next: Condition[]): void {
    const reason = REASON.SharedAudienceAccepted;
    const tokens = next.find((c) => c.type === CONDITION.WorkloadTokensScoped);
    if (tokens?.reason !== reason) return;
    if (old?.find((c) => c.type === CONDITION.WorkloadTokensScoped)?.reason === reason) return;
    this.events.record(raw, 'Warning', reason, tokens.message);
  }

  /** Told once, when CredentialsReady turns AWSNamespaceNotAllowed, unless Ready's own event says it. */
  private recordNamespaceRefused(raw: KubeObject, old: Condition[] | undefined, next: Condition[]): void {
    const reason = REASON.AWSNamespaceNotAllowed;
    const cred = next.find((c) => c.type === CONDITION.CredentialsReady);
    if (cred?.reason !== reason || next[0]?.reason === reason) return;
    if (old?.find((c) => c.type === CONDITION.CredentialsReady)?.reason === reason) return;
    this.events.record(raw, 'Warning', reason, cred.message);
  }

  private recordReadyTransition(raw: KubeObject, old: Condition[] | undefined, ready: Condition): void {
    const before = old?.find((c) => c.type === CONDITION.Ready);
    if (before?.status === ready.status && before.reason === ready.reason) return;
    if (ready.status === 'True') this.events.record(raw, 'Normal', REASON.Ready, ready.message);
    else if (ready.status === 'False') this.events.record(raw, 'Warning', ready.reason, ready.message);
  }

  /** Ready stays True while a replica serves: a failing pod is told once, when AgentReady turns degraded. */
  private recordDegraded(raw: KubeObject, old: Condition[] | undefined, next: Condition[]): void {
    const agent = next.find((c) => c.type === CONDITION.AgentReady);
    if (agent?.reason !== REASON.AgentDegraded) return;
    if (old?.find((c) => c.type === CONDITION.AgentReady)?.reason === REASON.AgentDegraded) return;
    this.events.record(raw, 'Warning', REASON.AgentDegraded, agent.message);
  }
}
