// Leader election on a coordination.k8s.io/v1 Lease, following client-go's leaderelection: a candidate
// takes the lease only after it has seen the same record unchanged for a whole lease duration (its own
// clock, never the holder's timestamps), renews every retry period, and gives up leadership if it cannot
// renew within the renew deadline. Writes carry the resourceVersion, so two candidates cannot both win.
import type { Logger } from '../log.js';
import type { KubeClient } from '../kube/client.js';
import { KubeApiError, isReason } from '../kube/errors.js';
import { collectionPath, objectPath } from '../kube/resources.js';
import { type KubeObject, type OwnerReference, microTime } from '../kube/types.js';

export interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}
type Lease = KubeObject & { spec?: LeaseSpec };

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  /** Put on the Lease when it is created: deleting the owner (helm uninstall) removes it. */
  ownerReferences?: OwnerReference[];
  /** Defaults give a failover under 15 s after the leader dies without releasing. */
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

export class LeaderElector {
  private observed: string | undefined;
  private observedAt = 0;
  private leading = false;
  private readonly leaseMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;

  constructor(
    private readonly client: KubeClient,
    private readonly opts: LeaderElectionOptions,
    private readonly log: Logger,
  ) {
    this.leaseMs = opts.leaseDurationMs ?? 10_000;
    this.renewDeadlineMs = opts.renewDeadlineMs ?? 7_000;
    this.retryMs = opts.retryPeriodMs ?? 2_000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Blocks until this candidate holds the lease, then renews it in the background until `signal`
   * aborts (release) or renewal fails for the renew deadline (`onLost`; the process should exit, as
   * client-go's callers do, so that no stale leader keeps acting).
   */
  async run(signal: AbortSignal, onLost: () => void): Promise<boolean> {
    while (!signal.aborted) {
      if (await this.tryAcquireOrRenew()) break;
      await sleep(this.retryMs * (1 + Math.random() * 0.2), signal);
    }
    if (signal.aborted) return false;
    this.leading = true;
    this.log.info({ lease: this.opts.name, identity: this.opts.identity }, 'became leader');
    void this.renewLoop(signal, onLost);
    return true;
  }

  private async renewLoop(signal: AbortSignal, onLost: () => void): Promise<void> {
    let lastRenew = Date.now();
    while (!signal.aborted) {
      await sleep(this.retryMs, signal);
      if (signal.aborted) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > this.renewDeadlineMs) {
        this.leading = false;
        this.log.error({ lease: this.opts.name }, 'could not renew the lease in time; leadership lost');
        onLost();
        return;
      }
    }
  }

  /** Hands the lease over at once (graceful shutdown), so a standby need not wait for expiry. */
  async release(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.client.get<Lease>(this.path());
      if (lease.spec?.holderIdentity !== this.opts.identity) return;
      const now = microTime();
      await this.client.replace(this.path(), {
        ...lease,
        spec: {
          ...lease.spec,
          holderIdentity: null,
          leaseDurationSeconds: 1,
          renewTime: now,
          acquireTime: now,
        },
      });
      this.log.info({ lease: this.opts.name }, 'released the lease');
    } catch (err) {
      this.log.warn({ err: String(err) }, 'could not release the lease; the standby takes over at expiry');
    }
  }

  private path(): string {
    return objectPath('Lease', this.opts.name, this.opts.namespace);
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { identity } = this.opts;
    const now = new Date();
    const spec: LeaseSpec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.leaseMs / 1000),
      acquireTime: microTime(now),
      renewTime: microTime(now),
      leaseTransitions: 0,
    };
    let lease: Lease;
    try {
      lease = await this.client.get<Lease>(this.path());
    } catch (err) {
      if (!isReason(err, 'NotFound')) return this.failed(err);
      try {
        await this.client.create(collectionPath('Lease', this.opts.namespace), {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: {
            name: this.opts.name,
            namespace: this.opts.namespace,
            ...(this.opts.ownerReferences ? { ownerReferences: this.opts.ownerReferences } : {}),
          },
          spec,
        });
        return true;
      } catch (createErr) {
        return this.failed(createErr);
      }
    }
    const current = lease.spec ?? {};
    const record = JSON.stringify(current);
    if (record !== this.observed) {
      this.observed = record;
      this.observedAt = Date.now();
    }
    const holder = current.holderIdentity ?? '';
    const heldByOther = holder !== '' && holder !== identity;
    const ttlMs = (current.leaseDurationSeconds ?? 0) * 1000;
    if (heldByOther && this.observedAt + ttlMs > Date.now()) return false;
    if (holder === identity) {
      spec.acquireTime = current.acquireTime;
      spec.leaseTransitions = current.leaseTransitions ?? 0;
    } else {
      spec.leaseTransitions = (current.leaseTransitions ?? 0) + 1;
    }
    try {
      const updated = await this.client.replace<Lease>(this.path(), { ...lease, spec });
      this.observed = JSON.stringify(updated.spec ?? {});
      this.observedAt = Date.now();
      return true;
    } catch (err) {
      return this.failed(err);
    }
  }

  private failed(err: unknown): false {
    // A conflict means another candidate wrote first: the normal way to lose a race, not an error.
    if (!(err instanceof KubeApiError && (err.reason === 'Conflict' || err.reason === 'AlreadyExists'))) {
      this.log.warn({ lease: this.opts.name, err: String(err) }, 'lease update failed');
    }
    return false;
  }
}
