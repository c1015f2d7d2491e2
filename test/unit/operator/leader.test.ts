// Leader election against an in-memory Lease with the API server's optimistic concurrency: one
// leader at a time, takeover only after the lease went unrenewed, instant handover on release.
import { afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../../../src/log.js';
import type { KubeClient } from '../../../src/kube/client.js';
import { KubeApiError } from '../../../src/kube/errors.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { LeaderElector } from '../../../src/operator/leader.js';

class LeaseStore {
  lease: KubeObject | undefined;
  private rv = 0;
  asClient(): KubeClient {
    const conflict = (why: string) => new KubeApiError(409, 'Conflict', why);
    return {
      get: async () => {
        if (!this.lease) throw new KubeApiError(404, 'NotFound', 'no lease');
        return structuredClone(this.lease);
      },
      create: async (_path: string, obj: KubeObject) => {
        if (this.lease) throw new KubeApiError(409, 'AlreadyExists', 'exists');
        this.lease = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
        return this.lease;
      },
      replace: async (_path: string, obj: KubeObject) => {
        if (obj.metadata.resourceVersion !== this.lease?.metadata.resourceVersion) throw conflict('stale');
        this.lease = { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } };
        return structuredClone(this.lease);
      },
    } as unknown as KubeClient;
  }
  holder(): string | undefined {
    return (this.lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity ?? undefined;
  }
}

const timing = { leaseDurationMs: 1000, renewDeadlineMs: 700, retryPeriodMs: 100 };
const aborts: AbortController[] = [];
afterEach(() => aborts.splice(0).forEach((a) => a.abort()));

function candidate(store: LeaseStore, identity: string) {
  const abort = new AbortController();
  aborts.push(abort);
  const elector = new LeaderElector(
    store.asClient(),
    { namespace: 'ns', name: 'lease', identity, ...timing },
    createLogger('t', 'silent'),
  );
  let lost = false;
  const leading = elector.run(abort.signal, () => (lost = true));
  return { elector, abort, leading, lost: () => lost };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('LeaderElector', () => {
  it('lets exactly one of two candidates lead while the leader renews', async () => {
    const store = new LeaseStore();
    const a = candidate(store, 'a');
    await a.leading;
    const b = candidate(store, 'b');
    await sleep(2500); // 2.5 lease durations: b would have taken over had a stopped renewing
    expect(store.holder()).toBe('a');
    expect(b.elector.isLeader).toBe(false);
    expect(a.lost()).toBe(false);
  });

  it('takes over once the leader stops renewing, not before the lease expires', async () => {
    const store = new LeaseStore();
    const a = candidate(store, 'a');
    await a.leading;
    const b = candidate(store, 'b');
    await sleep(300);
    const stoppedAt = Date.now();
    a.abort.abort(); // stops renewing without releasing: a crash as far as b can tell
    expect(await b.leading).toBe(true);
    expect(Date.now() - stoppedAt).toBeGreaterThanOrEqual(timing.leaseDurationMs - timing.retryPeriodMs * 3);
    expect(store.holder()).toBe('b');
  });

  it('hands over at once when the leader releases', async () => {
    const store = new LeaseStore();
    const a = candidate(store, 'a');
    await a.leading;
    const b = candidate(store, 'b');
    await sleep(150);
    a.abort.abort();
    await a.elector.release();
    const releasedAt = Date.now();
    await b.leading;
    expect(Date.now() - releasedAt).toBeLessThan(timing.leaseDurationMs);
  });

  it('gives up leadership when it cannot renew within the renew deadline', async () => {
    const store = new LeaseStore();
    const a = candidate(store, 'a');
    await a.leading;
    // Someone else rewrites the lease behind a's back: every renew now conflicts.
    store.lease = { ...store.lease!, spec: { holderIdentity: 'intruder', leaseDurationSeconds: 60 } };
    await sleep(timing.renewDeadlineMs + 400);
    expect(a.lost()).toBe(true);
    expect(a.elector.isLeader).toBe(false);
  });
});
