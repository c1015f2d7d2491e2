// A watched, cached collection: list, then watch from the list's resourceVersion; relist on 410 Gone
// (as client-node's ListWatch did, whose module loads all of client-node's generated models), restart
// with backoff on any other error: a watch must survive an API server restart or a network blip, and
// the cache must never silently go stale.
import type { Logger } from '../log.js';
import type { KubeClient, WatchCallback, WatchDone } from './client.js';
import { KubeApiError } from './errors.js';
import { type Kind, apiVersionOf, collectionPath } from './resources.js';
import type { KubeList, KubeObject } from './types.js';

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

/** KubeClient.watch's shape: what observedWatch wraps. */
export type WatchFn = KubeClient['watch'];

export class Informer<T extends KubeObject> {
  /** namespace ('' when cluster-scoped) → name → object. */
  private objects = new Map<string, Map<string, T>>();
  private resourceVersion = '';
  private request: { abort(): void } | undefined;
  private readonly handlers: ChangeHandler<T>[] = [];
  private synced = false;
  private stopped = false;
  private readonly backoff = new RestartBackoff();
  private restartTimer: NodeJS.Timeout | undefined;
  private resolveSynced: (() => void) | undefined;
  /** When the cache stopped following the server (first failure since it last did); undefined while it does. */
  private failingSince: number | undefined;
  private readonly path: string;
  private readonly listFn: () => Promise<KubeList<T>>;
  private readonly watch: WatchFn;

  constructor(
    client: KubeClient,
    private readonly kind: Kind,
    private readonly opts: InformerOptions,
  ) {
    const path = (this.path = collectionPath(kind, opts.namespace));
    const query = { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector };
    const apiVersion = apiVersionOf(kind);
    this.listFn = async () => {
      const result = await client.list<T>(path, query);
      // Items of a list carry no apiVersion/kind; watch events do. Make cached objects uniform.
      for (const item of result.items) {
        item.apiVersion ??= apiVersion;
        item.kind ??= kind;
        stripManagedFields(item);
      }
      return result;
    };
    this.watch = observedWatch(client.watch.bind(client), () => this.backoff.reset());
  }

  onChange(handler: ChangeHandler<T>): void {
    this.handlers.push(handler);
  }

  /** Starts listing and watching; resolves once the first list is in the cache. */
  start(): Promise<void> {
    const synced = new Promise<void>((resolve) => (this.resolveSynced = resolve));
    this.stopped = false;
    this.run();
    return synced;
  }

  get(name: string, namespace?: string): T | undefined {
    return this.objects.get(namespace ?? '')?.get(name);
  }

  list(namespace?: string): readonly T[] {
    if (namespace) return [...(this.objects.get(namespace)?.values() ?? [])];
    return [...this.objects.values()].flatMap((byName) => [...byName.values()]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    this.request?.abort();
    this.request = undefined;
    this.failingSince = undefined; // nothing relies on a stopped cache
  }

  private markSynced(): void {
    if (this.synced) return;
    this.synced = true;
    this.resolveSynced?.();
  }

  /**
   * How long the cache has not been following the server: 0 while a watch is open (or the last list
   * is fresh), else since the first failure. What an agent enforces meanwhile is what it last saw.
   */
  staleMs(now = Date.now()): number {
    return this.failingSince === undefined ? 0 : now - this.failingSince;
  }

  private restartLater(err: unknown): void {
    if (this.stopped) return;
    const delay = this.backoff.next(retryAfterMs(err));
    this.failingSince ??= Date.now();
    this.opts.log.warn(
      { kind: this.kind, path: this.path, err: String(err), retryInMs: delay, staleMs: this.staleMs() },
      'watch failed; restarting',
    );
    clearTimeout(this.restartTimer);
    this.restartTimer = setTimeout(() => this.run(), delay);
  }

  private run(): void {
    this.listAndWatch().catch((err: unknown) => this.restartLater(err));
  }

  private async listAndWatch(): Promise<void> {
    if (this.stopped) return;
    if (!this.resourceVersion) {
      const list = await this.listFn();
      if (this.stopped) return;
      this.replace(list.items);
      this.resourceVersion = list.metadata.resourceVersion ?? '';
      this.backoff.reset();
      this.following();
      this.markSynced();
    }
    const query = {
      resourceVersion: this.resourceVersion,
      labelSelector: this.opts.labelSelector,
      fieldSelector: this.opts.fieldSelector,
    };
    let ended = false;
    const request = await this.watch(this.path, query, this.onEvent, (err) => {
      ended = true;
      this.watchEnded(err);
    });
    if (this.stopped) request.abort();
    else if (!ended) {
      // The server accepted our resourceVersion: whatever changed since arrives on this watch.
      this.request = request;
      this.following();
    }
  }

  /** The cache follows the server again: say so once, after a failure. */
  private following(): void {
    if (this.failingSince === undefined) return;
    this.opts.log.info({ kind: this.kind, path: this.path, staleMs: this.staleMs() }, 'watch restored');
    this.failingSince = undefined;
  }

  private readonly onEvent: WatchCallback = (type, obj) => {
    if (type === 'ERROR') {
      // The server ends the watch after this; 410 Gone: what we hold is too old, list again.
      if ((obj as { code?: number }).code === 410) this.resourceVersion = '';
      return;
    }
    if (type === 'BOOKMARK') {
      // Only metadata.resourceVersion: where to resume, so a re-watch need not list again.
      const version = obj.metadata?.resourceVersion;
      if (version) this.resourceVersion = version;
      return;
    }
    if (type === 'ADDED' || type === 'MODIFIED') this.put(obj as T);
    else if (type === 'DELETED') this.remove(obj as T);
    this.resourceVersion = obj.metadata?.resourceVersion ?? '';
  };

  private readonly watchEnded: WatchDone = (err) => {
    this.request = undefined;
    if (this.stopped) return;
    if (err instanceof KubeApiError && err.status === 410) this.resourceVersion = '';
    else if (err) return this.restartLater(err);
    this.run(); // a watch the server ended (its timeout): watch again at once, as client-go does
  };

  /** A fresh list: objects it no longer holds are deleted, the rest added or updated. */
  private replace(items: T[]): void {
    const listed = new Set(items.map((o) => key(o)));
    for (const byName of this.objects.values())
      for (const obj of byName.values()) if (!listed.has(key(obj))) this.remove(obj);
    for (const obj of items) this.put(obj);
  }

  private put(obj: T): void {
    const ns = obj.metadata.namespace ?? '';
    let byName = this.objects.get(ns);
    if (!byName) this.objects.set(ns, (byName = new Map()));
    const found = byName.get(obj.metadata.name);
    const version = obj.metadata.resourceVersion;
    if (found && version !== undefined && found.metadata.resourceVersion === version) return;
    byName.set(obj.metadata.name, obj);
    this.emit(obj, found ? 'update' : 'add');
  }

  private remove(obj: T): void {
    const ns = obj.metadata.namespace ?? '';
    const byName = this.objects.get(ns);
    if (!byName?.delete(obj.metadata.name)) return;
    if (byName.size === 0) this.objects.delete(ns);
    this.emit(obj, 'delete');
  }

  private emit(obj: T, change: ChangeKind): void {
    for (const h of this.handlers) h(obj, change);
  }
}

const key = (o: KubeObject) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`;

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
  if (!(err instanceof KubeApiError)) return 0;
  // A 429 without retryAfterSeconds: assume the server's usual 1 s.
  return err.retryAfterMs ?? (err.status === 429 ? 1000 : 0);
}

/** The longest any of `informers` has not followed the server (0 while all do): what a stale metric reports. */
export function longestStale(
  informers: Iterable<{ staleMs(now?: number): number }>,
  now = Date.now(),
): number {
  let ms = 0;
  for (const inf of informers) ms = Math.max(ms, inf.staleMs(now));
  return ms;
}

/**
 * Wraps a watch: strips managedFields from each event, calls `healthy` once a watch has
 * delivered an event or stayed open HEALTHY_WATCH_MS, and turns a watch that ends sooner without any
 * event into an error, so the immediate re-watch goes through the backoff instead.
 */
export function observedWatch(watch: WatchFn, healthy: () => void, now: () => number = Date.now): WatchFn {
  return (path, query, callback, done) => {
    let openedAt: number | undefined;
    let delivered = false;
    let ended = false;
    const request = watch(
      path,
      query,
      (type, obj) => {
        if (type !== 'ERROR' && !delivered) {
          delivered = true;
          healthy();
        }
        stripManagedFields(obj);
        callback(type, obj);
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
      () => undefined, // the caller gets the same rejection
    );
    return request;
  };
}
