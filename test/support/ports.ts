// Free loopback ports for test servers. The kernel picks a free port (bind to 0), so parallel test
// files never race on a fixed number; the port is released before the server binds it, which is the
// usual small window every harness of this kind accepts.
import { createServer } from 'node:net';

function tryBind(port: number): Promise<number | undefined> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(undefined));
    srv.listen({ port, host: '127.0.0.1', exclusive: true }, () => {
      const addr = srv.address();
      const bound = typeof addr === 'object' && addr ? addr.port : undefined;
      srv.close(() => resolve(bound));
    });
  });
}

/** A port on 127.0.0.1 that is free right now. */
export async function freePort(): Promise<number> {
  const port = await tryBind(0);
  if (port === undefined) throw new Error('could not bind any loopback port');
  return port;
}

/**
 * A port P such that P and P + offset are both free and P + offset is a valid port — for Redis
 * Cluster nodes, whose cluster bus listens on P + 10000 (so P ≤ 55535).
 */
export async function freePortPair(offset: number): Promise<number> {
  const max = 65535 - offset;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = await freePort();
    if (port > max) continue;
    if ((await tryBind(port + offset)) !== undefined && (await tryBind(port)) !== undefined) return port;
  }
  throw new Error(`no free loopback port P with P+${offset} also free after 200 attempts`);
}
