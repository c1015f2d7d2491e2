// Fakes of the operator's own seams (caches, writer, events) and a stored Database for reconcile unit tests.
import type { EventSink, EventType } from '../../../src/operator/events.js';
import type { Kind } from '../../../src/kube/resources.js';
import type { KubeObject } from '../../../src/kube/types.js';
import type { ObjectCache, ObjectWriter } from '../../../src/kube/writer.js';
import { AWS_AUTH, type AuthType, Database } from '../../../src/api/database.js';
import { FINALIZER } from '../../../src/operator/names.js';
import type { StoredDatabase } from '../../../src/operator/database/manifests.js';

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
