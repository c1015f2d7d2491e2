// Reconciles one Database into its agent: TLS Secret, ServiceAccount, Role, RoleBinding, Service,
// PodDisruptionBudget (replicas > 1), NetworkPolicy (Helm networkPolicy.enabled) and Deployment, then
// writes status (status.ts). Level-based: it gets a key, reads the Database and everything it owns
// from informer caches, and applies only what differs.
//
// Outcomes (see controller.ts): `{ requeueAfterMs }` for the periodic health re-check and certificate
// renewal; TerminalError when the spec is invalid (reported as Ready=False InvalidSpec, waits for an
// edit); any other error (API conflict, network) is retried with backoff.
import { Database } from '../../api/database.js';
import { formatIssue } from '../../api/validate.js';
import { errorMessage } from '../../errors.js';
import { parseAs } from '../../kube/parse.js';
import type { KeyPairPem } from '../../pki/ca.js';
import type { Logger } from '../../log.js';
import { type ReconcileResult, type Reconciler, TerminalError } from '../controller.js';
import type { EventSink } from '../events.js';
import type { Kind } from '../../kube/resources.js';
import { containsDesired } from '../../kube/subset.js';
import { type KubeObject, objectKey, splitKey } from '../../kube/types.js';
import type { ObjectCache, ObjectWriter } from '../../kube/writer.js';
import { CONDITION, REASON } from '../../api/database-status.js';
import {
  FINALIZER,
  LABEL_INSTANCE,
  agentEndpoint,
  agentName,
  agentPeersName,
  agentTlsSecretName,
} from '../names.js';
import {
  type ConditionState,
  agentCondition,
  auditModeCondition,
  readyCondition,
  workloadTokensCondition,
} from './conditions.js';
import { agentIdentityCondition, awsNamespaceCondition, defaultAgentRole } from './agent-identity.js';
import {
  FORBIDDEN_KEYS_VALUE,
  forbiddenGlobs,
  forbiddenPodMetadata,
  podMetadataCondition,
  strayForbiddenPatch,
} from './pod-metadata.js';
import type { HealthChecker } from './health.js';
import { type AgentSettings, type StoredDatabase, agentManifests, tlsSecretManifest } from './manifests.js';
import { servingCert } from './serving-cert.js';
import { type DatabaseAccess, DatabaseStatusWriter } from './status.js';

export const OWNED_KINDS = [
  'Secret',
  'ServiceAccount',
  'Role',
  'RoleBinding',
  'Service',
  'PodDisruptionBudget',
  'NetworkPolicy',
  'Deployment',
] as const satisfies readonly Kind[];
export type OwnedKind = (typeof OWNED_KINDS)[number];

export interface DatabaseReconcilerDeps {
  databases: ObjectCache;
  owned: Record<OwnedKind, ObjectCache>;
  /** The agent pods (label AGENT_SELECTOR), read for why they are not ready; none when absent. */
  pods?: ObjectCache;
  writer: ObjectWriter;
  events: EventSink;
  health: Pick<HealthChecker, 'request' | 'result' | 'forget'>;
  ca: () => KeyPairPem;
  /** The CAs agents trust for client certificates (ca-rotation.ts); the signing CA alone when absent. */
  trust?: () => string;
  agent: AgentSettings;
  healthIntervalMs: number;
  log: Logger;
  /**
   * A CredentialsReady=False found outside this reconcile (AWS discovery, IAM bootstrap); it takes
   * precedence over the health check's own result while it lasts.
   */
  credentialIssue?: (key: string) => ConditionState | undefined;
  /** How many AccessRoles and DatabaseUsers of the namespace reach a Database with these labels. */
  access?: (namespace: string, labels: Record<string, string>) => DatabaseAccess;
  /** Told whether each Database is Ready after its reconcile (undefined: it is gone), for metrics. */
  readiness?: (key: string, ready: boolean | undefined) => void;
}

export class DatabaseReconciler implements Reconciler {
  readonly name = 'database';

  private readonly status: DatabaseStatusWriter;

  constructor(private readonly deps: DatabaseReconcilerDeps) {
    this.status = new DatabaseStatusWriter(deps.writer, deps.events);
  }

  async reconcile(key: string): Promise<ReconcileResult | void> {
    const { namespace = '', name } = splitKey(key);
    const raw = this.deps.databases.get(name, namespace);
    if (!raw) {
      this.deps.health.forget(key);
      this.deps.readiness?.(key, undefined);
      return; // Gone; what it owned was removed by the finalizer (and ownerReferences).
    }
    if (raw.metadata.deletionTimestamp) return this.finalize(key, raw);
    if (!raw.metadata.finalizers?.includes(FINALIZER)) {
      await this.setFinalizers(raw, [...(raw.metadata.finalizers ?? []), FINALIZER]);
    }

    const parsed = parseAs(Database, 'Database', raw);
    if (!parsed.success) {
      const issues = parsed.error.issues.map(formatIssue);
      await this.status.write(raw, invalidConditions(issues.join('; ')), undefined);
      this.deps.readiness?.(key, false);
      throw new TerminalError(`Database ${key} is invalid: ${issues.join('; ')}`);
    }
    const db = parsed.data as StoredDatabase;
    db.metadata.namespace = namespace;
    db.metadata.uid = raw.metadata.uid ?? '';

    const owned = this.deps.owned;
    const ca = this.deps.ca();
    const tlsSecret = owned.Secret.get(agentTlsSecretName(name), namespace);
    const cert = await servingCert(tlsSecret, namespace, name, ca, this.deps.trust?.() ?? ca.certPem);
    const desired = [tlsSecretManifest(db, cert.data), ...agentManifests(db, this.deps.agent, cert.digest)];
    const deploymentExisted = !!owned.Deployment.get(agentName(name), namespace);
    // The objects go out together (one round trip of latency, not seven), after a changed TLS Secret:
    // pods of a template with its new digest then mount its new content. One failing (say, a full
    // Service IP range) must not hide the rest or the status: report failures in AgentReady, then raise
    // the first one for a retry.
    const failures: { obj: KubeObject; err: unknown }[] = [];
    const stale = desired.filter((obj) => {
      const live = owned[obj.kind as OwnedKind].get(obj.metadata.name, namespace);
      return !live || !containsDesired(obj, live);
    });
    const apply = (objs: KubeObject[]) =>
      Promise.all(
        objs.map((obj) => this.deps.writer.apply(obj).catch((err: unknown) => failures.push({ obj, err }))),
      );
    await apply(stale.filter((obj) => obj === desired[0]));
    await apply(stale.filter((obj) => obj !== desired[0]));
    await this.removeStrayForbidden(raw, desired, failures);
    if (db.spec.agent.replicas <= 1 && owned.PodDisruptionBudget.get(agentName(name), namespace)) {
      await this.deps.writer.delete('PodDisruptionBudget', agentName(name), namespace);
    }
    if (!this.deps.agent.networkPolicy && owned.NetworkPolicy.get(agentName(name), namespace)) {
      await this.deps.writer.delete('NetworkPolicy', agentName(name), namespace);
    }
    if (db.spec.protocol !== 'postgres' && owned.Service.get(agentPeersName(name), namespace)) {
      await this.deps.writer.delete('Service', agentPeersName(name), namespace);
    }
    if (!deploymentExisted && !failures.some((f) => f.obj.kind === 'Deployment')) {
      this.deps.events.record(raw, 'Normal', 'AgentDeployed', `created agent Deployment ${agentName(name)}`);
    }
    if (cert.issued && deploymentExisted) {
      this.deps.events.record(raw, 'Normal', 'CertificateIssued', 'issued a new agent serving certificate');
    }

    this.deps.health.request(key, db);
    const health = this.deps.health.result(key);
    const endpoint = agentEndpoint(namespace, name, db.spec.protocol);
    const agent = this.deps.agent;
    const parts: ConditionState[] = [
      failures.length
        ? applyFailed(failures)
        : agentCondition(
            owned.Deployment.get(agentName(name), namespace),
            db.spec.agent.replicas,
            `${namespace}/${agentName(name)}`,
            this.agentPods(namespace, name),
          ),
      health?.backend ?? unknown(CONDITION.BackendReachable, REASON.Probing, 'probing the backend'),
      // Outside aws.namespaces nothing AWS is lent; else an AWS failure already seen (AssumeRoleDenied,
      // RDSCABundleMissing) is the more specific one.
      awsNamespaceCondition(db, namespace, agent.awsNamespaces, agent.awsPodIdentity, agent.awsRoleArn) ??
        this.deps.credentialIssue?.(key) ??
        agentIdentityCondition(db, defaultAgentRole(namespace, agent), agent.awsPodIdentity) ??
        health?.credentials ??
        unknown(CONDITION.CredentialsReady, REASON.Checking, 'reading the Secrets'),
    ];
    const access = this.deps.access?.(namespace, db.metadata.labels ?? {});
    const ready = readyCondition(parts, endpoint);
    const tokens = workloadTokensCondition(db, namespace);
    const globs = forbiddenGlobs(agent.forbiddenPodMetadataKeys);
    const podMetadata = podMetadataCondition(forbiddenPodMetadata(db.spec.agent, globs));
    const auditMode = auditModeCondition(db, agent.audit);
    await this.status.write(raw, [ready, ...parts, tokens, podMetadata, auditMode], endpoint, access);
    this.deps.readiness?.(key, ready.status === 'True');
    if (failures.length) throw failures[0]!.err;
    const renewInMs = cert.renewAt.getTime() - Date.now();
    return { requeueAfterMs: Math.max(1000, Math.min(this.deps.healthIntervalMs, renewInMs)) };
  }

  /**
   * Starts the health check when a Database is first seen, while its key still waits in the queue: at
   * scale the result is in by the time the reconcile runs, and status is written once, not "probing"
   * first and the result after.
   */
  prefetchHealth(raw: KubeObject): void {
    if (raw.metadata.deletionTimestamp || !raw.metadata.namespace) return;
    const parsed = parseAs(Database, 'Database', raw);
    if (!parsed.success) return;
    const db = { ...parsed.data, metadata: { ...parsed.data.metadata, namespace: raw.metadata.namespace } };
    this.deps.health.request(objectKey(raw), db);
  }

  /**
   * Forbidden pod labels/annotations on the live agent Deployment that the controller does not want
   * (applied by an older release, or edited in): removed whoever set them (pod-metadata.ts).
   */
  private async removeStrayForbidden(
    raw: KubeObject,
    desired: readonly KubeObject[],
    failures: { obj: KubeObject; err: unknown }[],
  ): Promise<void> {
    const deployment = desired.find((o) => o.kind === 'Deployment')!;
    const { name, namespace } = deployment.metadata;
    const live = this.deps.owned.Deployment.get(name, namespace);
    const globs = forbiddenGlobs(this.deps.agent.forbiddenPodMetadataKeys);
    const stray = strayForbiddenPatch(live, deployment, globs);
    if (!stray) return;
    try {
      await this.deps.writer.mergePatch('Deployment', name, namespace, stray.patch);
    } catch (err) {
      failures.push({ obj: deployment, err });
      return;
    }
    const keys = stray.keys;
    this.deps.events.record(
      raw,
      'Warning',
      REASON.PodMetadataForbidden,
      `removed ${keys.map((k) => `"${k}"`).join(', ')} from the agent Deployment ${name}'s pod template: the ` +
        `platform forbids these keys on agent pods, whose stdout is the audit log (Helm value ${FORBIDDEN_KEYS_VALUE})`,
    );
  }

  private agentPods(namespace: string, database: string): KubeObject[] {
    const instance = agentName(database);
    return (this.deps.pods?.list(namespace) ?? []).filter(
      (p) => p.metadata.labels?.[LABEL_INSTANCE] === instance,
    );
  }

  /** Deletes what the agent owned, then lets the Database go. */
  private async finalize(key: string, raw: KubeObject): Promise<void> {
    if (!raw.metadata.finalizers?.includes(FINALIZER)) return;
    const { namespace, name } = raw.metadata;
    const agent = agentName(name);
    for (const kind of [...OWNED_KINDS].reverse()) {
      await this.deps.writer.delete(kind, kind === 'Secret' ? agentTlsSecretName(name) : agent, namespace);
    }
    await this.deps.writer.delete('Service', agentPeersName(name), namespace);
    await this.setFinalizers(
      raw,
      raw.metadata.finalizers.filter((f) => f !== FINALIZER),
    );
    this.deps.health.forget(key);
    this.deps.log.info({ database: key }, 'removed the agent of a deleted Database');
  }

  /** Merge patch carrying resourceVersion: a concurrent edit makes it fail with Conflict and retry. */
  private setFinalizers(raw: KubeObject, finalizers: string[]): Promise<void> {
    const { name, namespace, resourceVersion } = raw.metadata;
    return this.deps.writer.mergePatch('Database', name, namespace, {
      metadata: { finalizers, resourceVersion },
    });
  }
}

function applyFailed(failures: { obj: KubeObject; err: unknown }[]): ConditionState {
  const what = failures.map(({ obj, err }) => `${obj.kind} ${obj.metadata.name}: ${errorMessage(err)}`);
  return {
    type: CONDITION.AgentReady,
    status: 'False',
    reason: REASON.AgentApplyFailed,
    message: `could not apply ${what.join('; ').slice(0, 600)}; retrying with backoff`,
  };
}

function unknown(
  type: ConditionState['type'],
  reason: ConditionState['reason'],
  message: string,
): ConditionState {
  return { type, status: 'Unknown', reason, message };
}

function invalidConditions(message: string): ConditionState[] {
  const why = 'the spec is invalid; see the Ready condition';
  return [
    {
      type: CONDITION.Ready,
      status: 'False',
      reason: REASON.InvalidSpec,
      message: `fix the Database: ${message}`,
    },
    unknown(CONDITION.AgentReady, REASON.InvalidSpec, why),
    unknown(CONDITION.BackendReachable, REASON.InvalidSpec, why),
    unknown(CONDITION.CredentialsReady, REASON.InvalidSpec, why),
  ];
}
