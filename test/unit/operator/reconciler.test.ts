// DatabaseReconciler against fake caches: what one reconcile would write, for each starting state.
import { beforeAll, describe, expect, it } from 'vitest';
import { Database } from '../../../src/api/database.js';
import type { Condition } from '../../../src/api/meta.js';
import { createLogger } from '../../../src/log.js';
import { TerminalError } from '../../../src/operator/controller.js';
import type { HealthResult } from '../../../src/operator/database/health.js';
import { agentManifests, tlsSecretManifest } from '../../../src/operator/database/manifests.js';
import {
  DatabaseReconciler,
  OWNED_KINDS,
  type OwnedKind,
} from '../../../src/operator/database/reconciler.js';
import { servingCert } from '../../../src/operator/database/serving-cert.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { FINALIZER } from '../../../src/operator/names.js';
import { type KeyPairPem, createCA } from '../../../src/pki/ca.js';
import { FakeCache, RecordingEvents, RecordingWriter, database } from './fakes.js';

const AGENT = { image: 'drawbridge:test', command: ['drawbridge'] };
let ca: KeyPairPem;

beforeAll(async () => {
  ca = await createCA({ commonName: 'test' });
});

const healthy: HealthResult = {
  generation: 3,
  checkedAt: Date.now(),
  backend: { type: 'BackendReachable', status: 'True', reason: 'BackendReachable', message: 'ok' },
  credentials: { type: 'CredentialsReady', status: 'True', reason: 'Passthrough', message: 'ok' },
};

/** Caches holding exactly what a previous reconcile applied, so a steady state can be asserted. */
async function steadyOwned(db: KubeObject, deployStatus?: object): Promise<Record<OwnedKind, FakeCache>> {
  const owned = Object.fromEntries(OWNED_KINDS.map((k) => [k, new FakeCache()])) as Record<
    OwnedKind,
    FakeCache
  >;
  const parsed = Database.parse(db);
  const stored = { ...parsed, metadata: { ...parsed.metadata, namespace: 'shop', uid: 'u-1' } };
  const cert = await servingCert(undefined, 'shop', 'orders', ca);
  owned.Secret.put(tlsSecretManifest(stored, cert.data));
  for (const obj of agentManifests(stored, AGENT, cert.digest)) {
    owned[obj.kind as OwnedKind].put(
      obj.kind === 'Deployment' && deployStatus ? { ...obj, status: deployStatus } : obj,
    );
  }
  return owned;
}

function reconciler(db: KubeObject | undefined, owned: Record<OwnedKind, FakeCache>, health?: HealthResult) {
  const writer = new RecordingWriter();
  const events = new RecordingEvents();
  const requested: string[] = [];
  const r = new DatabaseReconciler({
    databases: new FakeCache(db ? [db] : []),
    owned,
    writer,
    events,
    health: { request: (key) => requested.push(key), result: () => health, forget: () => undefined },
    ca: () => ca,
    agent: AGENT,
    healthIntervalMs: 30_000,
    log: createLogger('test', 'silent'),
  });
  return { r, writer, events, requested };
}

const emptyOwned = () =>
  Object.fromEntries(OWNED_KINDS.map((k) => [k, new FakeCache()])) as Record<OwnedKind, FakeCache>;

describe('DatabaseReconciler', () => {
  it('creates every agent object of a new Database, then writes status', async () => {
    const { r, writer, events, requested } = reconciler(
      database({}, { finalizers: undefined }),
      emptyOwned(),
    );
    const result = await r.reconcile('shop/orders');
    expect(writer.ops()).toEqual([
      'patch Database',
      'apply Secret',
      'apply ServiceAccount',
      'apply Role',
      'apply RoleBinding',
      'apply Service',
      'apply Service', // the headless peers Service (PostgreSQL cancels across replicas)
      'apply Deployment',
      'patch Database/status',
    ]);
    expect(writer.writes[0]).toMatchObject({
      patch: { metadata: { finalizers: [FINALIZER], resourceVersion: '7' } },
    });
    const status = (
      writer.writes.at(-1) as {
        patch: {
          status: { conditions: { type: string; status: string; reason: string }[]; endpoint: string };
        };
      }
    ).patch.status;
    expect(status.endpoint).toBe('drawbridge-orders.shop.svc:5432');
    expect(status.conditions.map((c) => `${c.type}=${c.status}/${c.reason}`)).toEqual([
      'Ready=Unknown/AgentDeploying',
      'AgentReady=Unknown/AgentDeploying',
      'BackendReachable=Unknown/Probing',
      'CredentialsReady=Unknown/Checking',
      'WorkloadTokensScoped=True/DatabaseAudience',
      'PodMetadataAllowed=True/PodMetadataAllowed',
      'AuditModeAllowed=True/AuditModeAllowed',
    ]);
    expect(events.events.map((e) => e.reason)).toEqual(['AgentDeployed']);
    expect(requested).toEqual(['shop/orders']);
    expect(result?.requeueAfterMs).toBe(30_000);
  });

  it('writes nothing when the cluster already matches and status is current', async () => {
    const db = database();
    const owned = await steadyOwned(db, { observedGeneration: 1, readyReplicas: 1 });
    const first = reconciler(db, owned, healthy);
    await first.r.reconcile('shop/orders');
    expect(first.writer.ops()).toEqual(['patch Database/status']);
    const status = (first.writer.writes[0] as { patch: { status: object } }).patch.status;
    expect(status).toMatchObject({
      observedGeneration: 3,
      conditions: [{ type: 'Ready', status: 'True' }, {}, {}, {}, {}, {}, {}],
    });

    const again = reconciler({ ...db, status }, owned, healthy);
    await again.r.reconcile('shop/orders');
    expect(again.writer.ops()).toEqual([]);
    expect(again.events.events).toEqual([]);
  });

  it('warns, once, while the Database accepts tokens for the shared audience, and leaves Ready alone', async () => {
    const db = database({ workloads: { acceptSharedAudience: true } });
    const owned = await steadyOwned(db, { observedGeneration: 1, readyReplicas: 1 });
    const first = reconciler(db, owned, healthy);
    await first.r.reconcile('shop/orders');
    const status = (first.writer.writes[0] as { patch: { status: { conditions: Condition[] } } }).patch
      .status;
    const tokens = status.conditions.find((c) => c.type === 'WorkloadTokensScoped')!;
    expect(tokens).toMatchObject({ status: 'False', reason: 'SharedAudienceAccepted' });
    expect(tokens.message).toMatch(/tokens for the shared audience drawbridge\.dev open sessions here/);
    expect(tokens.message).toMatch(/move the workloads to audience drawbridge\.dev\/shop\/orders/);
    expect(status.conditions[0]).toMatchObject({ type: 'Ready', status: 'True' });
    expect(first.events.events.filter((e) => e.type === 'Warning')).toEqual([
      { type: 'Warning', reason: 'SharedAudienceAccepted', message: tokens.message },
    ]);

    const again = reconciler({ ...db, status }, owned, healthy);
    await again.r.reconcile('shop/orders');
    expect(again.events.events).toEqual([]);

    const removed = reconciler({ ...database(), status }, owned, healthy);
    await removed.r.reconcile('shop/orders');
    const after = (removed.writer.writes[0] as { patch: { status: { conditions: Condition[] } } }).patch
      .status;
    expect(after.conditions.find((c) => c.type === 'WorkloadTokensScoped')).toMatchObject({
      status: 'True',
      reason: 'DatabaseAudience',
      message: 'workload tokens must be for audience drawbridge.dev/shop/orders',
    });
  });

  it('re-applies only an object that drifted from what it should be', async () => {
    const db = database();
    const owned = await steadyOwned(db);
    const svc = owned.Service.get('drawbridge-orders', 'shop')!;
    owned.Service.put({ ...svc, spec: { ...(svc.spec as object), type: 'NodePort' } });
    const { r, writer } = reconciler(db, owned, healthy);
    await r.reconcile('shop/orders');
    expect(writer.ops().filter((o) => o.startsWith('apply'))).toEqual(['apply Service']);
  });

  it('adds a PodDisruptionBudget above one replica and removes it when scaled back', async () => {
    const two = reconciler(database({ agent: { replicas: 2 } }), emptyOwned());
    await two.r.reconcile('shop/orders');
    expect(two.writer.ops()).toContain('apply PodDisruptionBudget');

    const owned = await steadyOwned(database());
    owned.PodDisruptionBudget.put({
      kind: 'PodDisruptionBudget',
      metadata: { name: 'drawbridge-orders', namespace: 'shop' },
    });
    const one = reconciler(database(), owned, healthy);
    await one.r.reconcile('shop/orders');
    expect(one.writer.ops()).toContain('delete PodDisruptionBudget');
  });

  it('applies the rest when one object fails, reports which in AgentReady, and retries', async () => {
    const { r, writer } = reconciler(database(), emptyOwned(), healthy);
    const apply = writer.apply.bind(writer);
    writer.apply = async (obj) => {
      if (obj.kind === 'Service') throw new Error('failed to allocate a serviceIP: range is full');
      return apply(obj);
    };
    await expect(r.reconcile('shop/orders')).rejects.toThrow(/range is full/);
    expect(writer.ops()).toContain('apply Deployment');
    const status = writer.writes.at(-1) as {
      patch: { status: { conditions: { type: string; reason: string; message: string }[] } };
    };
    const agent = status.patch.status.conditions.find((c) => c.type === 'AgentReady')!;
    expect(agent.reason).toBe('AgentApplyFailed');
    expect(agent.message).toMatch(/Service drawbridge-orders: failed to allocate a serviceIP/);
    expect(status.patch.status.conditions[0]).toMatchObject({ type: 'Ready', reason: 'AgentApplyFailed' });
  });

  it('reports an invalid spec naming the field, creates nothing, and waits for an edit', async () => {
    const { r, writer, events } = reconciler(database({ uri: 'redis://db:6379' }), emptyOwned());
    await expect(r.reconcile('shop/orders')).rejects.toBeInstanceOf(TerminalError);
    expect(writer.ops()).toEqual(['patch Database/status']);
    const ready = (
      writer.writes[0] as { patch: { status: { conditions: { reason: string; message: string }[] } } }
    ).patch.status.conditions[0]!;
    expect(ready.reason).toBe('InvalidSpec');
    expect(ready.message).toMatch(/spec\.uri: scheme "redis" does not match protocol "postgres"/);
    expect(events.events.map((e) => `${e.type} ${e.reason}`)).toEqual(['Warning InvalidSpec']);
  });

  it('on deletion removes what the agent owned, then its finalizer', async () => {
    const db = database({}, { deletionTimestamp: '2026-01-01T00:00:00Z', finalizers: ['other', FINALIZER] });
    const { r, writer } = reconciler(db, emptyOwned());
    await r.reconcile('shop/orders');
    expect(writer.ops()).toEqual([
      'delete Deployment',
      'delete NetworkPolicy',
      'delete PodDisruptionBudget',
      'delete Service',
      'delete RoleBinding',
      'delete Role',
      'delete ServiceAccount',
      'delete Secret',
      'delete Service', // peers
      'patch Database',
    ]);
    expect(writer.writes.at(-1)).toMatchObject({ patch: { metadata: { finalizers: ['other'] } } });
  });

  it('does nothing for a Database that is gone', async () => {
    const { r, writer } = reconciler(undefined, emptyOwned());
    expect(await r.reconcile('shop/orders')).toBeUndefined();
    expect(writer.writes).toEqual([]);
  });
});
