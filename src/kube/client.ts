// A small JSON client for the Kubernetes API. Why not the generated client-node APIs: they open a fresh
// TLS connection for every call and turn objects into model classes; a controller making thousands of
// calls wants one keep-alive connection pool, plain JSON and errors it can classify.
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { type KubeCredentials, kubeConfigCredentials } from './credentials.js';
import { KubeApiError } from './errors.js';
import type { KubeList, KubeObject } from './types.js';

export type PatchType = 'merge' | 'json' | 'apply';

const PATCH_CONTENT_TYPES: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
  apply: 'application/apply-patch+yaml',
};

export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
}

/** The field manager every Drawbridge write uses, so server-side apply can tell our fields apart. */
const FIELD_MANAGER = 'drawbridge';

/** One event of a watch: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR (whose object is a Status). */
export type WatchCallback = (type: string, obj: KubeObject) => void;
/** Ends a watch; `done` is then called once, with the error when the watch failed. */
export type WatchDone = (err: unknown) => void;

export interface KubeClientOptions {
  /**
   * The `timeoutSeconds` each watch asks for; by default client-go's: random from 5 to 10 minutes, so
   * watches started together (a restart, a partition healing) do not all end together.
   */
  watchTimeoutSeconds?: () => number;
  /** How long past its timeoutSeconds a watch may stay silent before it is presumed dead. */
  watchGraceMs?: number;
}

/** client-go's reflector: 5 minutes × (1 to 2). */
const randomWatchTimeout = () => Math.floor(300 * (1 + Math.random()));
/** Past timeoutSeconds the server ends the watch; its close should reach us well within this. */
export const WATCH_GRACE_MS = 30_000;

export class KubeClient {
  private readonly agent: http.Agent;
  // Watches hold their connection for as long as they last: a pool of their own, so they never take
  // the sockets requests need.
  private readonly watchAgent: http.Agent;

  private readonly watchTimeoutSeconds: () => number;
  private readonly watchGraceMs: number;

  constructor(
    private readonly credentials: KubeCredentials,
    opts: KubeClientOptions = {},
  ) {
    this.watchTimeoutSeconds = opts.watchTimeoutSeconds ?? randomWatchTimeout;
    this.watchGraceMs = opts.watchGraceMs ?? WATCH_GRACE_MS;
    const { server, tls } = credentials;
    const https_ = server.protocol === 'https:';
    this.agent = https_
      ? new https.Agent({ ...tls, keepAlive: true, maxSockets: 32 })
      : new http.Agent({ keepAlive: true, maxSockets: 32 });
    this.watchAgent = https_ ? new https.Agent(tls) : new http.Agent();
  }

  static async fromKubeConfig(kc: KubeConfig): Promise<KubeClient> {
    return new KubeClient(await kubeConfigCredentials(kc));
  }

  private url(path: string, query: RequestOptions['query'] = {}): URL {
    const url = new URL(this.credentials.server.href.replace(/\/$/, '') + path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined) url.searchParams.set(k, String(v));
    return url;
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const url = this.url(path, opts.query);
    const body = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string> = {
      ...(await this.credentials.headers()),
      accept: 'application/json',
    };
    if (body) {
      headers['content-type'] = opts.contentType ?? 'application/json';
      headers['content-length'] = String(body.length);
    }
    const client = url.protocol === 'https:' ? https : http;
    return new Promise<T>((resolve, reject) => {
      const req = client.request(
        url,
        { method, headers, agent: this.agent, timeout: opts.timeoutMs ?? 30_000 },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('error', (err) => reject(KubeApiError.network(method, path, err)));
          res.on('end', () => {
            const text = Buffer.concat(chunks).toString('utf8');
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) {
              resolve((text ? JSON.parse(text) : undefined) as T);
            } else {
              reject(KubeApiError.fromResponse(method, path, status, text));
            }
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error(`no response within ${opts.timeoutMs ?? 30_000} ms`)));
      req.on('error', (err) => reject(KubeApiError.network(method, path, err)));
      req.end(body);
    });
  }

  get<T extends KubeObject>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  list<T extends KubeObject>(path: string, query?: RequestOptions['query']): Promise<KubeList<T>> {
    return this.request<KubeList<T>>('GET', path, { query });
  }

  create<T extends KubeObject>(path: string, body: T): Promise<T> {
    return this.request<T>('POST', path, { body, query: { fieldManager: FIELD_MANAGER } });
  }

  replace<T extends KubeObject>(path: string, body: T): Promise<T> {
    return this.request<T>('PUT', path, { body, query: { fieldManager: FIELD_MANAGER } });
  }

  patch<T extends KubeObject>(path: string, type: PatchType, body: unknown): Promise<T> {
    const query =
      type === 'apply' ? { fieldManager: FIELD_MANAGER, force: true } : { fieldManager: FIELD_MANAGER };
    return this.request<T>('PATCH', path, { body, contentType: PATCH_CONTENT_TYPES[type], query });
  }

  /** Deletes; a missing object counts as deleted. */
  async delete(path: string, propagationPolicy: 'Background' | 'Foreground' = 'Background'): Promise<void> {
    try {
      await this.request('DELETE', path, {
        body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy },
      });
    } catch (err) {
      if (!(err instanceof KubeApiError && err.reason === 'NotFound')) throw err;
    }
  }

  /**
   * Watches a collection: one JSON event per line. Resolves once the watch is open (after `done` when
   * the request failed) with what ends the watch.
   *
   * Why a deadline: a connection that dies without a FIN or RST (a NAT or conntrack entry dropped, the
   * API server's host lost, a partition, a middlebox that keeps the socket open) would otherwise leave
   * the watch waiting forever, and whatever acts on it (an agent enforcing access) on state it can no
   * longer refresh. The server ends every watch after `timeoutSeconds` and sends BOOKMARKs while it is
   * open; nothing at all for timeoutSeconds plus a grace means the connection is dead: the watch ends
   * with an error and the caller watches again (through its backoff).
   */
  async watch(
    path: string,
    query: RequestOptions['query'],
    callback: WatchCallback,
    done: WatchDone,
  ): Promise<{ abort(): void }> {
    const timeoutSeconds = this.watchTimeoutSeconds();
    const url = this.url(path, { ...query, watch: true, timeoutSeconds, allowWatchBookmarks: true });
    const headers = { ...(await this.credentials.headers()), accept: 'application/json' };
    const silenceMs = timeoutSeconds * 1000 + this.watchGraceMs;
    let resolve!: (handle: { abort(): void }) => void;
    const opened = new Promise<{ abort(): void }>((r) => (resolve = r));
    const handle = { abort: () => end(null) };
    let ended = false;
    const end = (err: unknown) => {
      if (ended) return;
      ended = true;
      clearTimeout(deadline);
      req.destroy();
      done(err);
      resolve(handle);
    };
    // Refreshed by every chunk: covers connecting, the TLS handshake, the response and the stream.
    const deadline = setTimeout(() => {
      const why = `nothing from the API server for ${silenceMs} ms (timeoutSeconds ${timeoutSeconds} + grace)`;
      end(KubeApiError.network('GET', path, new Error(`${why}: the connection is presumed dead`)));
    }, silenceMs);
    const client = url.protocol === 'https:' ? https : http;
    const req = client.request(url, { headers, agent: this.watchAgent });
    req.on('error', (err) => end(KubeApiError.network('GET', path, err)));
    // A peer that is gone (no FIN, no RST) is found by keepalive probes sooner than by the deadline.
    req.on('socket', (socket) => socket.setKeepAlive(true, 30_000));
    req.on('response', (res) => {
      deadline.refresh();
      res.setEncoding('utf8');
      let text = '';
      res.on('error', (err) => end(KubeApiError.network('GET', path, err)));
      if (res.statusCode !== 200) {
        const refused = () => end(KubeApiError.fromResponse('GET', path, res.statusCode ?? 0, text));
        res.on('data', (c: string) => (text += c));
        res.on('end', refused);
        res.on('close', refused);
        return;
      }
      resolve(handle);
      res.on('data', (chunk: string) => {
        deadline.refresh();
        text += chunk;
        let nl: number;
        while (!ended && (nl = text.indexOf('\n')) >= 0) {
          const line = text.slice(0, nl);
          text = text.slice(nl + 1);
          if (!line.trim()) continue;
          let event: { type: string; object: KubeObject };
          try {
            event = JSON.parse(line) as typeof event;
          } catch {
            end(new Error(`GET ${path}: the watch sent a line that is not JSON`));
            return;
          }
          callback(event.type, event.object);
        }
      });
      res.on('end', () => end(null));
      res.on('close', () => end(null));
    });
    req.end();
    return opened;
  }

  close(): void {
    this.agent.destroy();
    this.watchAgent.destroy();
  }
}
