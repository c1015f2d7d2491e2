// A watched, cached collection. client-node's ListWatch does list-then-watch and relists on 410 Gone;
// it stops on any other error, so this wrapper restarts it with backoff: a watch must survive an API
// server restart or a network blip, and the cache must never silently go stale.
import { type KubernetesObject, ListWatch, Watch } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import type { KubeClient } from './client.js';
import { type Kind, apiVersionOf, collectionPath } from './resources.js';
import type { KubeObject } from './types.js';

export type ChangeKind = 'add' | 'update' | 'delete';
export type ChangeHandler<T> = (obj: T, change: ChangeKind) => void;

export interface InformerOptions {
  /** Watch one namespace; all namespaces when omitted. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  log: Logger;
}

const MIN_BACKOFF_MS = 500;
const MAX_BACKOFF_MS = 30_000;

export class Informer<T extends KubeObject> {
  // client-node types timestamps as Date; the objects are plain JSON, so the cache is typed by cast.
  private readonly lw: ListWatch<KubernetesObject>;
  private readonly handlers: ChangeHandler<T>[] = [];
  private synced = false;
  private stopped = false;
  private backoffMs = MIN_BACKOFF_MS;
  private restartTimer: NodeJS.Timeout | undefined;
  private resolveSynced: (() => void) | undefined;

  private readonly path: string;

  constructor(
    client: KubeClient,
    private readonly kind: Kind,
    private readonly opts: InformerOptions,
  ) {
    const path = (this.path = collectionPath(kind, opts.namespace));
    const query = { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector };
    const apiVersion = apiVersionOf(kind);
    const list = async () => {
      const result = await client.list<T>(path, query);
      // Items of a list carry no apiVersion/kind; watch events do. Make cached objects uniform.
      for (const item of result.items) {
        item.apiVersion ??= apiVersion;
        item.kind ??= kind;
        stripManagedFields(item);
      }
      this.backoffMs = MIN_BACKOFF_MS;
      // ListWatch fills its cache right after this resolves; mark synced once that has run.
      setImmediate(() => this.markSynced());
      return result;
    };
    this.lw = new ListWatch<KubernetesObject>(
      path,
      strippingWatch(new Watch(client.kubeConfig)),
      list as () => Promise<{ items: KubernetesObject[]; metadata: { resourceVersion?: string } }>,
      false,
      opts.labelSelector,
      opts.fieldSelector,
    );
    const emit = (change: ChangeKind) => (obj: KubernetesObject) => {
      this.backoffMs = MIN_BACKOFF_MS;
      for (const h of this.handlers) h(obj as unknown as T, change);
    };
    this.lw.on('add', emit('add'));
    this.lw.on('update', emit('update'));
    this.lw.on('delete', emit('delete'));
    this.lw.on('error', (err: unknown) => this.restartLater(err));
  }

  onChange(handler: ChangeHandler<T>): void {
    this.handlers.push(handler);
  }

  /** Starts listing and watching; resolves once the first list is in the cache. */
  start(): Promise<void> {
    const synced = new Promise<void>((resolve) => (this.resolveSynced = resolve));
    void this.lw.start();
    return synced;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.lw.get(name, namespace) as T | undefined;
  }

  list(namespace?: string): readonly T[] {
    return this.lw.list(namespace) as unknown as readonly T[];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    await this.lw.stop();
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    this.resolveSynced?.();
  }

  private restartLater(err: unknown): void {
    if (this.stopped) return;
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
    this.opts.log.warn(
      { kind: this.kind, path: this.path, err: String(err), retryInMs: delay },
      'watch failed; restarting',
    );
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => void this.lw.start(), delay);
  }
}

/**
 * managedFields are often the largest part of an object written by server-side apply, and nothing
 * here reads them: dropping them before caching (as controller-runtime's cache transform does) keeps
 * the controller's memory proportional to what it uses.
 */
function stripManagedFields(obj: { metadata?: { managedFields?: unknown[] } } | undefined): void {
  if (obj?.metadata) delete obj.metadata.managedFields;
}

function strippingWatch(watch: Watch): Watch {
  return {
    config: watch.config,
    watch: (path, query, callback, done) =>
      watch.watch(
        path,
        query,
        (phase, obj: { metadata?: { managedFields?: unknown[] } } | undefined, raw) => {
          stripManagedFields(obj);
          callback(phase, obj, raw);
        },
        done,
      ),
  } as Watch;
}
