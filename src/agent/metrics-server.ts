// Serves /metrics (Prometheus), /healthz (readiness) and /livez (liveness) for probes.
import type * as Http from 'node:http';
import { createRequire } from 'node:module';
import type { Logger } from '../log.js';
import { listenError } from './listen-error.js';
import type { Registry } from 'prom-client';

// Not `import { createServer } from 'node:http'`: Node builds that module's ES facade by reading every
// export, and its WebSocket getters load undici and http2 (~14 MB of RSS on Node 24 that an agent never
// uses); require() reads createServer alone.
const { createServer } = createRequire(import.meta.url)('node:http') as typeof Http;

/**
 * Scrapers and probes send their request at once and are answered at once. Node closes a connection
 * that sends nothing at all only once it sends something (headersTimeout counts from the first byte):
 * anyone who reaches the port could hold sockets open by the thousand. One idle, or trickling its
 * headers, for this long is closed.
 */
const IDLE_MS = 10_000;

/**
 * `metrics`: the agent's or the controller's (anything with a prom-client registry, or what reads like
 * one: the agent's worker pool sums its workers'). `ready`: /healthz answers 503 while it is false;
 * /livez answers 200 while the process can answer at all.
 */
export function serveMetrics(
  listen: string,
  metrics: { registry: Pick<Registry, 'metrics' | 'contentType'> },
  log: Logger,
  ready: () => boolean = () => true,
  /** Where `listen` comes from, for the error that names the fix. */
  setting = "--metrics, or spec.metrics in a standalone agent's config",
): Promise<Http.Server> {
  const i = listen.lastIndexOf(':');
  const timeouts = { headersTimeout: IDLE_MS, requestTimeout: IDLE_MS, connectionsCheckingInterval: 1_000 };
  const server = createServer(timeouts, (req, res) => {
    // Liveness: the process's event loop still answers. Never /healthz, which is 503 while the agent
    // drains or its workers restart: a liveness probe on it would kill pods for doing their job.
    if (req.url === '/livez') {
      res.end('ok');
      return;
    }
    if (req.url === '/healthz') {
      res.statusCode = ready() ? 200 : 503;
      res.end(res.statusCode === 200 ? 'ok' : 'no worker is listening');
      return;
    }
    if (req.url !== '/metrics') {
      res.statusCode = 404;
      res.end();
      return;
    }
    metrics.registry.metrics().then(
      (text) => {
        res.setHeader('content-type', metrics.registry.contentType);
        res.end(text);
      },
      (err: unknown) => {
        log.error({ err }, 'metrics collection failed');
        res.statusCode = 500;
        res.end();
      },
    );
  });
  // With no 'timeout' listener, a socket idle this long is destroyed.
  server.setTimeout(IDLE_MS);
  return new Promise((resolve, reject) => {
    const failed = (err: unknown) => reject(listenError(err, 'metrics and probes', listen, setting));
    server.once('error', failed);
    server.listen(Number(listen.slice(i + 1)), listen.slice(0, i), () => {
      server.off('error', failed);
      resolve(server);
    });
  });
}
