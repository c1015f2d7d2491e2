// A watched, cached collection. client-node's ListWatch does list-then-watch and relists on 410 Gone;
// it stops on any other error, so this wrapper restarts it with backoff: a watch must survive an API
// server restart or a network blip, and the cache must never silently go stale.
import { type KubernetesObject, ListWatch, Watch } from '@kubernetes/client-node';
import type { Logger } from '../log.js';
import type { KubeClient } from './client.js';
import { KubeApiError } from './errors.js';
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

/** client-go's reflector: 800 ms doubling to a 30 s cap, jittered, back to the start once healthy. */
export const BACKOFF = { initialMs: 800, maxMs: 30_000 } as const;
/**
 * A watch open this long counts as healthy even without events (a quiet collection), so the next
 * failure starts from the initial delay again; one that ends sooner without events is an error, as
 * in client-go ("very short watch"): a server that accepts and closes at once must not spin.
 */
export const HEALTHY_WATCH_MS = 1000;

/**
 * The delay before each restart. Jitter (×1 to ×2 of a base that doubles up to half the cap, like
 * client-go's factor 1.0) keeps replicas that failed together, e.g. on an API server restart, from
 * all coming back in the same instant, at the cap too.
 */
export class RestartBackoff {
  private failures = 0;

  constructor(private readonly random: () => number = Math.random) {}

  /** The wait after one more failure; at least `retryAfterMs` (a 429's Retry-After), at most the cap. */
  next(retryAfterMs = 0): number {
    const base = Math.min(BACKOFF.initialMs * 2 ** this.failures, BACKOFF.maxMs / 2);
    this.failures = Math.min(this.failures + 1, 16);
    return Math.min(Math.max(Math.round(base * (1 + this.random())), retryAfterMs), BACKOFF.maxMs);
  }

  /** A list succeeded or a watch proved healthy: the next failure waits the initial delay. */
  reset(): void {
    this.failures = 0;
  }
}

export class Informer<T extends KubeObject> {
  // client-node types timestamps as Date; the objects are plain JSON, so the cache is typed by cast.
  private readonly lw: ListWatch<KubernetesObject>;
  private readonly handlers: ChangeHandler<T>[] = [];
  private synced = false;
  private stopped = false;
  private readonly backoff = new RestartBackoff();
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
      this.backoff.reset();
      // ListWatch fills its cache right after this resolves; mark synced once that has run.
      setImmediate(() => this.markSynced());
      return result;
    };
    this.lw = new ListWatch<KubernetesObject>(
      path,
      observedWatch(new Watch(client.kubeConfig), () => this.backoff.reset()),
      list as () => Promise<{ items: KubernetesObject[]; metadata: { resourceVersion?: string } }>,
      false,
      opts.labelSelector,
      opts.fieldSelector,
    );
    const emit = (change: ChangeKind) => (obj: KubernetesObject) => {
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
    this.run();
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
    const delay = this.backoff.next(retryAfterMs(err));
    this.opts.log.warn(
      { kind: this.kind, path: this.path, err: String(err), retryInMs: delay },
      'watch failed; restarting',
    );
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => this.run(), delay);
  }

  /** ListWatch reports request errors through 'error'; a rejection (credentials plugin) is one too. */
  private run(): void {
    this.lw.start().catch((err: unknown) => this.restartLater(err));
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

/** A 429's Retry-After (the API server sends 1 s while its watch cache initializes); 0 otherwise. */
function retryAfterMs(err: unknown): number {
  if (err instanceof KubeApiError) return err.retryAfterMs ?? 0;
  // client-node's Watch rejects with the status code only, no headers: assume the server's usual 1 s.
  return (err as { statusCode?: number } | undefined)?.statusCode === 429 ? 1000 : 0;
}

/**
 * Wraps client-node's Watch: strips managedFields from each event, calls `healthy` once a watch has
 * delivered an event or stayed open HEALTHY_WATCH_MS, and turns a watch that ends sooner without any
 * event into an error, so ListWatch's immediate re-watch goes through the backoff instead.
 */
export function observedWatch(watch: Watch, healthy: () => void, now: () => number = Date.now): Watch {
  return {
    config: watch.config,
    watch: (path, query, callback, done) => {
      let openedAt: number | undefined;
      let delivered = false;
      let ended = false;
      const request = watch.watch(
        path,
        query,
        (phase, obj: { metadata?: { managedFields?: unknown[] } } | undefined, raw) => {
          if (phase !== 'ERROR' && !delivered) {
            delivered = true;
            healthy();
          }
          stripManagedFields(obj);
          callback(phase, obj, raw);
        },
        (err: unknown) => {
          ended = true;
          const openMs = openedAt === undefined ? 0 : now() - openedAt;
          if (openMs >= HEALTHY_WATCH_MS) healthy();
          else if (!err && !delivered) err = new Error(`watch closed after ${openMs} ms without an event`);
          done(err);
        },
      );
      // Resolves once the response has arrived (after `done` when the request failed): open from then.
      request.then(
        () => {
          if (!ended) openedAt = now();
        },
        () => undefined, // ListWatch gets the same rejection
      );
      return request;
    },
  } as Watch;
}
