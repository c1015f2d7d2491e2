// Fakes of the operator's own seams (caches, writer, events) and a stored Database for reconcile unit tests.
import type { EventSink, EventType } from '../../../src/operator/events.js';
import type { Kind } from '../../../src/kube/resources.js';
import type { KubeObject } from '../../../src/kube/types.js';
import type { ObjectCache, ObjectWriter } from '../../../src/kube/writer.js';
import { AWS_AUTH, type AuthType, Database } from '../../../src/api/database.js';
import { FINALIZER } from '../../../src/operator/names.js';
import type { AgentSettings, StoredDatabase } from '../../../src/operator/database/manifests.js';
import type { Condition } from '../../../src/api/meta.js';
import { createLogger } from '../../../src/log.js';
import type { HealthResult } from '../../../src/operator/database/health.js';
import {
  DatabaseReconciler,
  OWNED_KINDS,
  type OwnedKind,
} from '../../../src/operator/database/reconciler.js';
import type { KeyPairPem } from '../../../src/pki/ca.js';

export class FakeCache implements ObjectCache {
  private readonly objects = new Map<string, KubeObject>();

  constructor(objects: KubeObject[] = []) {
    objects.forEach((o) => this.put(o));
  }

  put(obj: KubeObject): void {
    this.objects.set(`${obj.metadata.namespace ?? ''}/${obj.metadata.name}`, obj);
  }

  get(name: string, namespace?: string): KubeObject | undefined {
    return this.objects.get(`${namespace ?? ''}/${name}`);
  }

  list(namespace?: string): KubeObject[] {
    return [...this.objects.values()].filter((o) => !namespace || o.metadata.namespace === namespace);
  }
}

export type Write =
  | { op: 'apply'; kind: string; name: string; obj: KubeObject }
  | { op: 'patch'; kind: Kind; name: string; patch: unknown; subresource?: string }
  | { op: 'replace'; kind: string; name: string; obj: KubeObject; subresource?: string }
  | { op: 'delete'; kind: Kind; name: string };

export class RecordingWriter implements ObjectWriter {
  readonly writes: Write[] = [];

  async apply(obj: KubeObject): Promise<void> {
    this.writes.push({ op: 'apply', kind: obj.kind!, name: obj.metadata.name, obj });
  }

  async mergePatch(kind: Kind, name: string, _ns: string | undefined, patch: unknown, subresource?: string) {
    this.writes.push({ op: 'patch', kind, name, patch, subresource });
  }

  async replace(obj: KubeObject, subresource?: string): Promise<KubeObject> {
    this.writes.push({ op: 'replace', kind: obj.kind!, name: obj.metadata.name, obj, subresource });
    return {
      ...obj,
      metadata: { ...obj.metadata, resourceVersion: String(Number(obj.metadata.resourceVersion ?? 0) + 1) },
    };
  }

  async delete(kind: Kind, name: string): Promise<void> {
    this.writes.push({ op: 'delete', kind, name });
  }

  /** The status sent by the i-th write, which must be a replace. */
  replacedStatus<T>(i: number): T {
    const w = this.writes[i];
    if (w?.op !== 'replace') throw new Error(`write ${i} is ${w?.op ?? 'missing'}, not a replace`);
    return w.obj.status as T;
  }

  ops(): string[] {
    return this.writes.map(
      (w) => `${w.op} ${w.kind}${'subresource' in w && w.subresource ? `/${w.subresource}` : ''}`,
    );
  }
}

export class RecordingEvents implements EventSink {
  readonly events: { type: EventType; reason: string; message: string }[] = [];

  record(_obj: KubeObject, type: EventType, reason: string, message: string): void {
    this.events.push({ type, reason, message });
  }
}

/** `orders` as stored, with spec.aws matching an AWS auth type (self-hosted for any other). */
export function storedDatabase(auth: string, agent: object = {}, namespace = 'shop'): StoredDatabase {
  const type = AWS_AUTH[auth as AuthType]?.[0];
  const aws = type ? { aws: { type, region: 'us-east-1', identifiers: {} } } : {};
  const where = type?.startsWith('elasticache')
    ? { protocol: 'redis', uri: 'rediss://cache:6379' }
    : { protocol: 'postgres', uri: 'postgres://db:5432' };
  const db = Database.parse({
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'Database',
    metadata: { name: 'orders', namespace },
    spec: { ...where, auth: { type: auth }, agent, ...aws },
  });
  return { ...db, metadata: { ...db.metadata, namespace, uid: 'u-1' } };
}

/** `shop/orders` as the API server returns it (PostgreSQL, passthrough); `spec` and `meta` add or override. */
export function database(spec: object = {}, meta: object = {}): KubeObject {
  return {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'Database',
    metadata: {
      name: 'orders',
      namespace: 'shop',
      uid: 'u-1',
      generation: 3,
      resourceVersion: '7',
      finalizers: [FINALIZER],
      ...meta,
    },
    spec: { protocol: 'postgres', uri: 'postgres://db:5432', auth: { type: 'passthrough' }, ...spec },
  };
}

const healthy: HealthResult = {
  generation: 3,
  checkedAt: Date.now(),
  backend: { type: 'BackendReachable', status: 'True', reason: 'BackendReachable', message: 'ok' },
  credentials: { type: 'CredentialsReady', status: 'True', reason: 'Passthrough', message: 'ok' },
};

/** One reconcile of `db` (as shop/orders) with a healthy backend, `agent` settings and a live Deployment. */
export function reconcileOnce(
  ca: KeyPairPem,
  db: KubeObject,
  agent: Partial<AgentSettings> = {},
  liveDeployment?: KubeObject,
) {
  const owned = Object.fromEntries(OWNED_KINDS.map((k) => [k, new FakeCache()])) as Record<
    OwnedKind,
    FakeCache
  >;
  if (liveDeployment) owned.Deployment.put(liveDeployment);
  const writer = new RecordingWriter();
  const events = new RecordingEvents();
  const r = new DatabaseReconciler({
    databases: new FakeCache([db]),
    owned,
    writer,
    events,
    health: { request: () => undefined, result: () => healthy, forget: () => undefined },
    ca: () => ca,
    agent: { image: 'drawbridge:test', command: ['drawbridge'], ...agent },
    healthIntervalMs: 30_000,
    log: createLogger('test', 'silent'),
  });
  return { writer, events, done: r.reconcile('shop/orders') };
}

/** The status the reconcile wrote. */
export function writtenStatus(writer: RecordingWriter): { conditions: Condition[] } {
  const w = writer.writes.find((x) => x.op === 'patch' && x.subresource === 'status');
  if (w?.op !== 'patch') throw new Error('no status written');
  return (w.patch as { status: { conditions: Condition[] } }).status;
}
