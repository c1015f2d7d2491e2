// A small JSON client for the Kubernetes API. Why not the generated client-node APIs: they open a fresh
// TLS connection for every call and turn objects into model classes; a controller making thousands of
// calls wants one keep-alive connection pool, plain JSON and errors it can classify.
import http from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
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

export class KubeClient {
  private constructor(
    readonly kubeConfig: KubeConfig,
    private readonly server: URL,
    private readonly agent: http.Agent,
    private readonly staticHeaders: Record<string, string> | undefined,
  ) {}

  static async fromKubeConfig(kc: KubeConfig): Promise<KubeClient> {
    const cluster = kc.getCurrentCluster();
    if (!cluster)
      throw new Error('the kubeconfig has no current cluster; pick a context or pass --kubeconfig');
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    const tls: https.AgentOptions = {
      ca: opts.ca,
      cert: opts.cert,
      key: opts.key,
      rejectUnauthorized: opts.rejectUnauthorized,
      servername: opts.servername,
    };
    const server = new URL(cluster.server);
    const agent =
      server.protocol === 'https:'
        ? new https.Agent({ ...tls, keepAlive: true, maxSockets: 32 })
        : new http.Agent({ keepAlive: true, maxSockets: 32 });
    // Token files and exec plugins rotate credentials; everything else is fixed at start-up.
    const user = kc.getCurrentUser();
    const rotating = !!(user?.authProvider || user?.exec);
    const headers = rotating ? undefined : { ...(opts.headers as Record<string, string> | undefined) };
    return new KubeClient(kc, server, agent, headers);
  }

  private async headers(): Promise<Record<string, string>> {
    if (this.staticHeaders) return this.staticHeaders;
    const opts: https.RequestOptions = {};
    await this.kubeConfig.applyToHTTPSOptions(opts);
    return { ...(opts.headers as Record<string, string> | undefined) };
  }

  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const url = new URL(this.server.href.replace(/\/$/, '') + path);
    for (const [k, v] of Object.entries(opts.query ?? {}))
      if (v !== undefined) url.searchParams.set(k, String(v));
    const body = opts.body === undefined ? undefined : Buffer.from(JSON.stringify(opts.body));
    const headers: Record<string, string> = { ...(await this.headers()), accept: 'application/json' };
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

  close(): void {
    this.agent.destroy();
  }
}
