// `kubectl db proxy NAME --port P`: a local plaintext listener for GUI clients that cannot present a
// client certificate; every connection goes on to the agent over TLS with the stored login. The login
// is re-read per connection, so `kubectl db login` in another terminal renews a running proxy.
import { type Server, type Socket, createServer } from 'node:net';
import { Command, InvalidArgumentError } from 'commander';
import type { Protocol } from '../../api/database.js';
import { DrawbridgeError, errorMessage } from '../../errors.js';
import { type AgentAddress, dialAgent, readClientTls } from './dial.js';
import type { Io } from './io.js';
import { printable } from './printable.js';
import { servePostgresClient } from './pg-local.js';
import { relay } from './relay.js';
import { type DatabaseRef, describeRef, requireLogin } from './store.js';
import { endpointOptions, openDatabase } from './target-db.js';

export interface ProxyOptions {
  protocol: Protocol;
  ref: DatabaseRef;
  agent: AgentAddress;
  /** A TCP address and port, or the path of a Unix socket. */
  listen: { address: string; port: number } | { path: string };
}

export interface RunningProxy {
  /** The TCP port listened on (0 on a Unix socket). */
  port: number;
  close(): Promise<void>;
}

/** Redis clients read the first reply as the answer to their first command: an error there is seen. */
function redisError(err: unknown): string {
  const hint = err instanceof DrawbridgeError && err.hint ? ` (${err.hint})` : '';
  return `-ERR kubectl db proxy: ${errorMessage(err)}${hint}`.replace(/[\r\n]+/g, ' ') + '\r\n';
}

export async function startProxy(opts: ProxyOptions): Promise<RunningProxy> {
  const dial = async () => {
    const creds = await readClientTls(await requireLogin(opts.ref));
    return dialAgent(opts.protocol, opts.agent, creds);
  };
  const sockets = new Set<Socket>();
  const serveRedis = (socket: Socket) => {
    socket.on('error', () => socket.destroy());
    dial().then(
      (agent) => relay(socket, agent),
      (err: unknown) => socket.end(redisError(err)),
    );
  };
  const server: Server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    if (opts.protocol === 'postgres') void servePostgresClient(socket, dial);
    else serveRedis(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const where = opts.listen;
    const listening = () => {
      server.off('error', reject);
      resolve();
    };
    if ('path' in where) server.listen(where.path, listening);
    else server.listen(where.port, where.address, listening);
  });
  const bound = server.address();
  return {
    port: typeof bound === 'object' && bound ? bound.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        sockets.forEach((s) => s.destroy());
      }),
  };
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InvalidArgumentError('not a port number');
  return port;
}

/**
 * The port `kubectl db proxy` uses for a Database unless told otherwise: the same every time (so a GUI
 * client's saved connection keeps working), spread by a hash of namespace/name over 15000-15999
 * (PostgreSQL) or 16000-16999 (Redis), below the usual ephemeral range.
 */
export function defaultProxyPort(protocol: Protocol, namespace: string, name: string): number {
  let h = 0x811c9dc5; // FNV-1a
  for (const c of Buffer.from(`${namespace}/${name}`)) h = Math.imul(h ^ c, 0x01000193) >>> 0;
  return (protocol === 'postgres' ? 15000 : 16000) + (h % 1000);
}

function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || address.startsWith('127.');
}

function usage(protocol: Protocol, port: number, dbUser: string): string {
  return protocol === 'postgres'
    ? `psql "host=127.0.0.1 port=${port} user=${dbUser} sslmode=disable"`
    : `redis-cli -p ${port}`;
}

export function proxyCommand(io: Io): Command {
  const cmd = new Command('proxy')
    .description('serve a database on a local port for GUI clients (plaintext locally, TLS to the agent)')
    .argument('<name>', 'Database name')
    .option(
      '-p, --port <port>',
      'local port (default: a fixed one per database; 0 picks a free one)',
      parsePort,
    )
    .option('--address <ip>', 'local address to listen on', '127.0.0.1');
  return endpointOptions(cmd).action(
    async (
      name: string,
      opts: { port?: number; address: string; endpoint?: string; tlsServerName?: string },
      self: Command,
    ) => {
      if (!isLoopback(opts.address)) {
        io.err(
          `warning: ${opts.address} is not a loopback address: anyone who reaches it uses the database as you\n`,
        );
      }
      const open = await openDatabase(self, name, {
        ...opts,
        onForwardError: (e) => io.err(`${printable(e.message)}\n`),
      });
      const { db, login, endpoint, ref } = open;
      const port = opts.port ?? defaultProxyPort(db.spec.protocol, ref.namespace, ref.name);
      const proxy = await startProxy({
        protocol: db.spec.protocol,
        ref,
        agent: endpoint,
        listen: { address: opts.address, port },
      }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EADDRINUSE' || opts.port !== undefined) throw err;
        throw new DrawbridgeError(
          'INVALID_CONFIG',
          `port ${port}, the default for ${describeRef(ref)}, is in use (another kubectl db proxy?)`,
          'pass --port PORT, or --port 0 for any free port',
        );
      });
      io.out(
        `Proxying ${describeRef(ref)} on ${opts.address}:${proxy.port} (agent ${endpoint.serverName}, via ${endpoint.via}).\n` +
          `Connect with: ${usage(db.spec.protocol, proxy.port, login.record.dbUser)}\n` +
          'Press Ctrl+C to stop.\n',
      );
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
      await proxy.close();
      await endpoint.close();
    },
  );
}
