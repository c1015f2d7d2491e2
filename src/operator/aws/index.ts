// The controller's AWS side, from `--config` (aws.*), leader only: discovery, IAM bootstrap and
// managed-user rotation as three keys of one work queue with a single worker, so they never overlap
// and a failing one backs off alone. Order at start: IAM first (discovery's own Describe permissions
// may come from it), then discovery, then rotation. Database changes re-queue IAM and rotation after
// a short debounce, so a discovery round that creates fifty Databases costs one IAM sync.
import { type ControllerAwsConfig, allowedAwsNamespaces } from '../../api/controller-config.js';
import { parseDuration } from '../../api/meta.js';
import { type AwsClients, sharedAwsClients } from '../../aws/clients.js';
import { runDiscovery } from '../../aws/discovery/index.js';
import { bootstrapIam } from '../../aws/iam-bootstrap.js';
import { startRotation } from '../../aws/rotation.js';
import type { Logger } from '../../log.js';
import { Controller, type ReconcileResult, type Reconciler } from '../controller.js';
import type { EventSink } from '../events.js';
import type { Informer } from '../../kube/informer.js';
import type { KubeObject } from '../../kube/types.js';
import type { ObjectWriter } from '../../kube/writer.js';
import { DiscoveryLoop } from './discovery-loop.js';
import { IamSync } from './iam-sync.js';
import type { CredentialIssues } from './issues.js';
import { ControllerEvents, type PodRef } from './report.js';
import { RotationSync } from './rotation-sync.js';

export { CredentialIssues } from './issues.js';
export { podFromEnv, type PodRef } from './report.js';

const AWS_KEYS = { iam: 'aws/iam', discovery: 'aws/discovery', rotation: 'aws/rotation' } as const;

/** How long Database changes settle before IAM and rotation look at them. */
const DEBOUNCE_MS = 1000;
/** When a discovery round could not write everything, the next one comes this soon at the latest. */
const INCOMPLETE_RETRY_MS = 15_000;

export interface AwsSettings {
  config: ControllerAwsConfig;
  /** The controller's own Pod, where Events about AWS go. */
  pod?: PodRef;
  /** The agents' IAM role (agents.aws.roleArn): its policy is logged beside the controller's. */
  agentRoleArn?: string;
}

export interface AwsControllerOptions extends AwsSettings {
  /** The controller's namespace: discovered Databases go here unless config.namespace says otherwise. */
  defaultNamespace: string;
  databases: Informer<KubeObject>;
  writer: ObjectWriter;
  events: EventSink;
  issues: CredentialIssues;
  log: Logger;
  clients?: AwsClients;
}

class AwsReconciler implements Reconciler {
  readonly name = 'aws';

  constructor(
    private readonly parts: { discovery?: DiscoveryLoop; iam?: IamSync; rotation: RotationSync },
    private readonly discoveryIntervalMs: number,
  ) {}

  /**
   * Each key resolves with when to look again (discovery: its interval, sooner after a failed write;
   * IAM: its re-check); failures are reported by the parts themselves, so nothing throws but bugs.
   */
  async reconcile(key: string): Promise<ReconcileResult | void> {
    switch (key) {
      case AWS_KEYS.discovery: {
        if (!this.parts.discovery) return;
        const { complete } = await this.parts.discovery.run();
        const interval = this.discoveryIntervalMs;
        return { requeueAfterMs: complete ? interval : Math.min(interval, INCOMPLETE_RETRY_MS) };
      }
      case AWS_KEYS.iam: {
        const next = await this.parts.iam?.run();
        return next === undefined ? undefined : { requeueAfterMs: next };
      }
      case AWS_KEYS.rotation:
        this.parts.rotation.run();
        return;
    }
  }
}

export function startAws(opts: AwsControllerOptions): { stop(): Promise<void> } {
  const { config, log } = opts;
  const clients = opts.clients ?? sharedAwsClients();
  const namespace = config.namespace ?? opts.defaultNamespace;
  const allowed = allowedAwsNamespaces(config, opts.defaultNamespace);
  const events = new ControllerEvents(opts.events, opts.pod, log);
  const discoveryIntervalMs = parseDuration(config.discoveryInterval);
  const discovery = config.matchers.length
    ? new DiscoveryLoop({
        matchers: config.matchers,
        namespace,
        ...(config.rdsCaSecretRef ? { rdsCa: config.rdsCaSecretRef } : {}),
        databases: opts.databases,
        writer: opts.writer,
        issues: opts.issues,
        events,
        discover: (m) => runDiscovery([m], clients, { enableIamAuth: config.enableIamAuth, log }),
        log,
      })
    : undefined;
  // IAM is global; its calls still need a region for signing: the pod's (chart value aws.region).
  const iamRegion = process.env.AWS_REGION ?? config.matchers[0]?.regions[0] ?? 'us-east-1';
  const iam =
    config.iamBootstrap === 'off'
      ? undefined
      : new IamSync({
          mode: config.iamBootstrap,
          matchers: config.matchers,
          databases: opts.databases,
          issues: opts.issues,
          events,
          attach: (inputs) => bootstrapIam(clients, iamRegion, inputs),
          resyncMs: Math.max(discoveryIntervalMs, 5 * 60_000),
          log,
          namespaces: allowed,
          ...(opts.agentRoleArn ? { agentRoleArn: opts.agentRoleArn } : {}),
        });
  const rotationMs = parseDuration(config.managedUsers.rotationInterval);
  const rotation = new RotationSync({
    databases: opts.databases,
    start: (ids) => startRotation(clients, ids, log, rotationMs),
    log,
    namespaces: allowed,
  });

  const ctl = new Controller(new AwsReconciler({ discovery, iam, rotation }, discoveryIntervalMs), log, 1);
  opts.databases.onChange(() => {
    ctl.queue.addAfter(AWS_KEYS.iam, DEBOUNCE_MS);
    ctl.queue.addAfter(AWS_KEYS.rotation, DEBOUNCE_MS);
  });
  for (const key of [AWS_KEYS.iam, AWS_KEYS.discovery, AWS_KEYS.rotation]) ctl.enqueue(key);
  ctl.start();
  log.info(
    {
      namespace,
      matchers: config.matchers.length,
      iamBootstrap: config.iamBootstrap,
      allowedNamespaces: allowed.length ? allowed : 'all',
    },
    'AWS discovery, IAM bootstrap and rotation running',
  );
  return {
    async stop() {
      await ctl.stop();
      rotation.stop();
    },
  };
}
