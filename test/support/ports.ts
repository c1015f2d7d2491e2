// Free loopback ports for test servers. The kernel picks a free port (bind to 0), so parallel test
// files never race on a fixed number; the port is released before the server binds it, and another
// process can take it in that window (another test's server, or a connection's local port): servers
// are started through withFreshPorts, which starts them again on fresh ports when that happened.
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

/** What a server says (in the log its start error carries) when a port it was given is taken; the agent: listen-error.ts. */
const PORT_TAKEN = /address already in use|EADDRINUSE|port is in use by another process/i;

/**
 * `start` (which picks its ports with freePort/freePortPair), tried again on fresh ports when the
 * server could not bind one, at most `tries` times in all. `start` must leave nothing running when it
 * fails, and its error must carry what the server said (its log tail).
 */
export async function withFreshPorts<T>(start: () => Promise<T>, tries = 3): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (attempt >= tries || !PORT_TAKEN.test(err instanceof Error ? err.message : String(err))) throw err;
    }
  }
}
