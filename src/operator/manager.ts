// `drawbridge controller`: wires informers, work queues and reconcilers, and runs them only while
// this replica holds the leader Lease. Caches sync before any worker starts, as controller-runtime
// does, so a first reconcile never mistakes "not cached yet" for "does not exist".
import os from 'node:os';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import { ChangeFilter, byGeneration, byLabels } from './access/changes.js';
import { accessCounts } from './access/check.js';
import { AccessRoleReconciler, DatabaseUserReconciler } from './access/reconciler.js';
import { AGENT_ACCESS_KEY, AgentAccessReconciler, TOKENREVIEW_ROLE } from './agent-access.js';
import { type AwsSettings, CredentialIssues, startAws } from './aws/index.js';
import { type CaState, trustBundle } from './ca-rotation.js';
import { CA_SECRET_NAME, CaReconciler, loadOrCreateCA } from './ca-store.js';
import { Controller } from './controller.js';
import { CsrSigner } from './csr/signer.js';
import { HealthChecker } from './database/health.js';
import type { AgentSettings } from './database/manifests.js';
import { DatabaseReconciler, OWNED_KINDS, type OwnedKind } from './database/reconciler.js';
import { EventRecorder } from './events.js';
import { KubeClient } from '../kube/client.js';
import { Informer, longestStale } from '../kube/informer.js';
import { objectPath } from '../kube/resources.js';
import { type KubeObject, type OwnerReference, objectKey } from '../kube/types.js';
import { clientWriter } from '../kube/writer.js';
import { LeaderElector, type LeaderElectionOptions } from './leader.js';
import type { ControllerMetrics } from './metrics.js';
import { AGENT_SELECTOR, LABEL_INSTANCE, MANAGED_SELECTOR, SIGNER_NAME } from './names.js';
import { validPolicy } from '../authz/policy.js';

export interface ControllerOptions {
  kubeConfig: KubeConfig;
  /** The controller's own namespace: the CA Secret, the CA ConfigMap and the leader Lease live here. */
  namespace: string;
  agent: AgentSettings;
  log: Logger;
  /** Unique per replica; defaults to hostname_pid. */
  identity?: string;
  /**
   * The controller's own Deployment in `namespace` (the chart's): it owns the CA Secret, the CA ConfigMap
   * and the Lease, so deleting it (helm uninstall) leaves none of them behind.
   */
  ownerDeployment?: string;
  /** `false` runs without election (a single replica, tests). */
  leaderElection?:
    | false
    | Partial<Pick<LeaderElectionOptions, 'name' | 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs'>>;
  /** Databases reconciled at once (default 16: reconciles wait on the API server, not the CPU). */
  workers?: number;
  /** How often backends are probed and Secrets re-read (default 60 s). */
  healthIntervalMs?: number;
  /** Called when leadership is lost; the process should exit so that a fresh start re-campaigns. */
  onLostLeadership?: () => void;
  /** AWS discovery, IAM bootstrap and managed-user rotation (`--config`, aws.*); off when absent. */
  aws?: AwsSettings;
  /** Reconcile, queue and leader metrics (served by the caller); none when absent. */
  metrics?: ControllerMetrics;
}

export interface RunningController {
  /** Resolves once this replica leads and its caches are synced (a standby: once it takes over). */
  readonly active: Promise<void>;
  /** Stops work, releases the Lease so a standby takes over at once, closes connections. */
  stop(): Promise<void>;
}

const ownerKey = (obj: KubeObject): string | undefined => {
  const ref = obj.metadata.ownerReferences?.find((r) => r.kind === 'Database' && r.controller);
  return ref && obj.metadata.namespace ? `${obj.metadata.namespace}/${ref.name}` : undefined;
};

export async function startController(opts: ControllerOptions): Promise<RunningController> {
  const log = opts.log;
  const client = await KubeClient.fromKubeConfig(opts.kubeConfig);
  const identity = opts.identity ?? `${os.hostname()}_${process.pid}`;
  const abort = new AbortController();
  const owners = opts.ownerDeployment
    ? [await deploymentOwner(client, opts.namespace, opts.ownerDeployment)]
    : [];
  const election =
    opts.leaderElection === false
      ? undefined
      : new LeaderElector(
          client,
          {
            namespace: opts.namespace,
            name: 'drawbridge-controller',
            identity,
            ownerReferences: owners,
            ...opts.leaderElection,
          },
          log,
        );
  const stoppers: (() => Promise<void>)[] = [];

  const metrics = opts.metrics;
  const run = async (): Promise<void> => {
    const lost = () => {
      metrics?.leader.set(0);
      opts.onLostLeadership?.();
    };
    if (election && !(await election.run(abort.signal, lost))) return;
    metrics?.leader.set(1);
    let ca: CaState = await loadOrCreateCA(client, opts.namespace, log, owners);
    let trust = trustBundle(ca);
    // What the metric reads: the watches this leader's reconciles and CSR signing trust.
    const informers: Informer<KubeObject>[] = [];
    metrics?.observeStale(() => longestStale(informers));
    const informer = (
      kind: ConstructorParameters<typeof Informer>[1],
      extra: { namespace?: string; labelSelector?: string; fieldSelector?: string } = {},
    ) => {
      const inf = new Informer<KubeObject>(client, kind, { log, ...extra });
      stoppers.push(() => inf.stop());
      informers.push(inf);
      return inf;
    };
    const databases = informer('Database');
    const roles = informer('AccessRole');
    const users = informer('DatabaseUser');
    const caSecret = informer('Secret', {
      namespace: opts.namespace,
      fieldSelector: `metadata.name=${CA_SECRET_NAME}`,
    });
    const csrs = informer('CertificateSigningRequest', { fieldSelector: `spec.signerName=${SIGNER_NAME}` });
    const bindings = informer('ClusterRoleBinding', { fieldSelector: `metadata.name=${TOKENREVIEW_ROLE}` });
    const owned = Object.fromEntries(
      OWNED_KINDS.map((k) => [k, informer(k, { labelSelector: MANAGED_SELECTOR })]),
    ) as Record<OwnedKind, Informer<KubeObject>>;
    // The agents' pods only (their labels), for why they are not ready: a crash loop, an image pull.
    const pods = informer('Pod', { labelSelector: AGENT_SELECTOR });

    const writer = clientWriter(client);
    const events = new EventRecorder(client, 'drawbridge-controller', log);
    // AWS failures shown as CredentialsReady on the Databases they affect (empty when AWS is off).
    const awsIssues = new CredentialIssues((key) => dbCtl.enqueue(key));
    const healthIntervalMs = opts.healthIntervalMs ?? 60_000;
    const health = new HealthChecker(
      client,
      { intervalMs: healthIntervalMs, concurrency: 16, probeTimeoutMs: 3000 },
      (key) => dbCtl.enqueue(key),
    );
    const databaseReconciler = new DatabaseReconciler({
      databases,
      owned,
      pods,
      writer,
      events,
      health,
      ca: () => ca.signing,
      trust: () => trust,
      agent: opts.agent,
      healthIntervalMs,
      log,
      credentialIssue: (key) => awsIssues.get(key),
      access: (ns, labels) => accessCounts(validPolicy(roles.list(ns), users.list(ns), log), labels),
      readiness: (key, ready) => metrics?.setDatabaseReady(key, ready),
    });
    const dbCtl = new Controller(databaseReconciler, log, opts.workers ?? 16, metrics);
    const csrCtl = new Controller(
      new CsrSigner({
        csrs,
        writer,
        events,
        ca: () => ca.signing,
        log,
        access: {
          database: (ns, name) => databases.get(name, ns),
          policy: (ns) => validPolicy(roles.list(ns), users.list(ns), log),
        },
      }),
      log,
      2,
      metrics,
    );
    // A rotation step changes what agents trust or what signs them: every Database is reconciled again.
    const caCtl = new Controller(
      new CaReconciler({
        client,
        namespace: opts.namespace,
        owners,
        secret: () => caSecret.get(CA_SECRET_NAME, opts.namespace),
        events,
        log,
        changed: (next) => {
          const changed = next.signing.certPem !== ca.signing.certPem || trustBundle(next) !== trust;
          ca = next;
          trust = trustBundle(next);
          if (changed) fanOut(undefined, [dbCtl, databases]);
        },
      }),
      log,
      1,
      metrics,
    );
    const accessCtl = new Controller(new AgentAccessReconciler(databases, bindings, writer), log, 1, metrics);
    const accessDeps = { roles, users, databases, writer, events, log };
    const roleCtl = new Controller(new AccessRoleReconciler(accessDeps), log, 2, metrics);
    const userCtl = new Controller(new DatabaseUserReconciler(accessDeps), log, 2, metrics);
    stoppers.unshift(
      () => dbCtl.stop(),
      () => csrCtl.stop(),
      () => caCtl.stop(),
      () => accessCtl.stop(),
      () => roleCtl.stop(),
      () => userCtl.stop(),
    );
    // Status of each kind counts the others in its namespace: a real change (not a status write) to
    // one brings the others of that namespace back.
    const fanOut = (ns: string | undefined, ...ctls: [Controller, Informer<KubeObject>][]) => {
      for (const [ctl, inf] of ctls) for (const o of inf.list(ns)) ctl.enqueue(objectKey(o));
    };
    const roleChanges = new ChangeFilter(byGeneration);
    const userChanges = new ChangeFilter(byGeneration);
    const labelChanges = new ChangeFilter(byLabels);
    roles.onChange((obj, change) => {
      if (change !== 'delete') roleCtl.enqueue(objectKey(obj));
      if (roleChanges.changed(obj, change))
        fanOut(obj.metadata.namespace, [userCtl, users], [dbCtl, databases]);
    });
    users.onChange((obj, change) => {
      if (change !== 'delete') userCtl.enqueue(objectKey(obj));
      if (userChanges.changed(obj, change))
        fanOut(obj.metadata.namespace, [roleCtl, roles], [dbCtl, databases]);
    });

    databases.onChange((obj, change) => {
      if (change !== 'delete') databaseReconciler.prefetchHealth(obj);
      if (labelChanges.changed(obj, change))
        fanOut(obj.metadata.namespace, [roleCtl, roles], [userCtl, users]);
      dbCtl.enqueue(objectKey(obj));
      // Coalesced: a burst of new Databases becomes one write of the binding, not one per Database.
      if (change !== 'update' || obj.metadata.deletionTimestamp)
        accessCtl.queue.addAfter(AGENT_ACCESS_KEY, 1000);
    });
    for (const inf of Object.values(owned)) {
      inf.onChange((obj) => {
        const key = ownerKey(obj);
        if (key) dbCtl.enqueue(key);
      });
    }
    // A pod's owner is a ReplicaSet; its instance label names the agent Deployment, owned by the Database.
    pods.onChange((pod) => {
      const instance = pod.metadata.labels?.[LABEL_INSTANCE];
      const deployment = instance ? owned.Deployment.get(instance, pod.metadata.namespace) : undefined;
      const key = deployment && ownerKey(deployment);
      if (key) dbCtl.enqueue(key);
    });
    csrs.onChange((obj, change) => change !== 'delete' && csrCtl.enqueue(obj.metadata.name));
    bindings.onChange(() => accessCtl.enqueue(AGENT_ACCESS_KEY));
    caSecret.onChange(() => caCtl.enqueue(CA_SECRET_NAME));

    await Promise.all(
      [databases, roles, users, csrs, bindings, caSecret, pods, ...Object.values(owned)].map((i) =>
        i.start(),
      ),
    );
    accessCtl.enqueue(AGENT_ACCESS_KEY);
    caCtl.enqueue(CA_SECRET_NAME);
    for (const c of [dbCtl, csrCtl, caCtl, accessCtl, roleCtl, userCtl]) c.start();
    if (opts.aws) {
      const aws = startAws({
        ...opts.aws,
        defaultNamespace: opts.namespace,
        databases,
        writer,
        events,
        issues: awsIssues,
        log,
      });
      stoppers.unshift(() => aws.stop());
    }
    log.info({ identity, namespace: opts.namespace }, 'controller running');
  };

  const active = run();
  active.catch((err: unknown) => log.error({ err }, 'controller failed to start'));
  return {
    active,
    async stop() {
      abort.abort();
      for (const stop of stoppers) await stop();
      await election?.release();
      client.close();
    },
  };
}

async function deploymentOwner(client: KubeClient, namespace: string, name: string): Promise<OwnerReference> {
  const deployment = await client.get(objectPath('Deployment', name, namespace));
  return { apiVersion: 'apps/v1', kind: 'Deployment', name, uid: deployment.metadata.uid! };
}
