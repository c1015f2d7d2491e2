// Free loopback ports for real servers started by tests and benches. The kernel picks the port
// (bind 127.0.0.1:0), so parallel suites never collide on a hard-coded number.
import { createServer } from 'node:net';

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

/**
 * A port P with P + offset also free, e.g. a Redis Cluster node and its bus port (offset 10000).
 * P stays at or below 65535 - offset.
 */
export async function freePortPair(offset: number): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = await freePort();
    if (port + offset > 65535) continue;
    if (await portIsFree(port + offset)) return port;
  }
  throw new Error(`no free port pair (P, P+${offset}) found on 127.0.0.1 after 200 attempts`);
}
