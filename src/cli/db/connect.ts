// `kubectl db connect NAME`: starts psql or redis-cli against the agent with the stored client
// certificate, verifying the agent's certificate (sslmode=verify-full for psql). Arguments after `--`
// go to the client unchanged.
import { spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { Command } from 'commander';
import { backendAddress } from '../../api/database.js';
import { DrawbridgeError } from '../../errors.js';
import type { Endpoint } from './endpoint.js';
import type { Io } from './io.js';
import type { StoredLogin } from './store.js';
import { type OpenDatabase, endpointOptions, openDatabase } from './target-db.js';

export interface ClientCommand {
  command: string;
  args: string[];
  /** Added to the environment the client inherits. */
  env?: Record<string, string>;
}

/** A libpq conninfo value: quoted when it holds spaces, quotes or backslashes, or is empty. */
export function conninfoValue(value: string): string {
  return /^[^\s'\\]+$/.test(value) ? value : `'${value.replace(/(['\\])/g, '\\$1')}'`;
}

export function psqlCommand(
  addr: { hostaddr?: string; port: number; serverName: string },
  login: Pick<StoredLogin, 'keyFile' | 'certFile' | 'caFile'>,
  dbUser: string,
  dbName: string | undefined,
  extra: string[],
): ClientCommand {
  // libpq verifies the certificate against `host` and connects to `hostaddr` when it is set: that is
  // how a port-forward on 127.0.0.1 still checks the agent's real name.
  const params: [string, string | undefined][] = [
    ['host', addr.serverName],
    ['hostaddr', addr.hostaddr],
    ['port', String(addr.port)],
    ['user', dbUser],
    ['dbname', dbName],
    ['sslmode', 'verify-full'],
    ['sslcert', login.certFile],
    ['sslkey', login.keyFile],
    ['sslrootcert', login.caFile],
    ['application_name', 'kubectl-db'],
  ];
  const conninfo = params
    .filter((p): p is [string, string] => p[1] !== undefined)
    .map(([k, v]) => `${k}=${conninfoValue(v)}`)
    .join(' ');
  return { command: 'psql', args: [conninfo, ...extra] };
}

/**
 * The agent knows the person from the certificate; AUTH only picks the database user (Redis's own
 * `default` when there is none). Its password matters only to passthrough backends, so a REDISCLI_AUTH
 * the person set is kept, and a placeholder stands in otherwise: redis-cli sends no AUTH without one.
 */
export function redisCliCommand(
  addr: { host: string; port: number; serverName: string },
  login: Pick<StoredLogin, 'keyFile' | 'certFile' | 'caFile'>,
  dbUser: string,
  extra: string[],
): ClientCommand {
  const auth = dbUser === 'default' ? [] : ['--user', dbUser];
  return {
    command: 'redis-cli',
    args: [
      '-h',
      addr.host,
      '-p',
      String(addr.port),
      '--tls',
      '--cert',
      login.certFile,
      '--key',
      login.keyFile,
      '--cacert',
      login.caFile,
      ...(isIP(addr.serverName) ? [] : ['--sni', addr.serverName]),
      ...auth,
      ...extra,
    ],
    ...(auth.length ? { env: { REDISCLI_AUTH: process.env.REDISCLI_AUTH ?? 'client-certificate' } } : {}),
  };
}

/** An IP for libpq's hostaddr when the TLS name differs from where the bytes go. */
async function hostaddrFor(endpoint: Endpoint): Promise<string | undefined> {
  if (endpoint.host === endpoint.serverName) return undefined;
  return isIP(endpoint.host) ? endpoint.host : (await lookup(endpoint.host)).address;
}

export async function clientCommand(
  open: OpenDatabase,
  opts: { dbUser?: string; dbName?: string },
  extra: string[],
): Promise<ClientCommand> {
  const { db, login, endpoint } = open;
  const dbUser = opts.dbUser ?? login.record.dbUser;
  if (db.spec.protocol === 'redis') return redisCliCommand(endpoint, login, dbUser, extra);
  const dbName = opts.dbName ?? backendAddress(db.spec).database;
  const addr = {
    hostaddr: await hostaddrFor(endpoint),
    port: endpoint.port,
    serverName: endpoint.serverName,
  };
  return psqlCommand(addr, login, dbUser, dbName, extra);
}

/** Runs the client in the foreground; resolves with its exit code. */
export function runClient(client: ClientCommand): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(client.command, client.args, {
      stdio: 'inherit',
      env: { ...process.env, ...client.env },
    });
    // Ctrl+C belongs to the client (psql cancels the query); we must not die of it meanwhile.
    const ignore = () => {};
    process.on('SIGINT', ignore);
    child.once('error', (err: NodeJS.ErrnoException) => {
      process.off('SIGINT', ignore);
      reject(
        err.code === 'ENOENT'
          ? new DrawbridgeError(
              'INVALID_CONFIG',
              `${client.command} is not installed or not on PATH`,
              `install it, or use kubectl db proxy NAME and a client of your choice`,
            )
          : err,
      );
    });
    child.once('exit', (code, signal) => {
      process.off('SIGINT', ignore);
      resolve(code ?? (signal ? 128 : 1));
    });
  });
}

export function connectCommand(io: Io): Command {
  const cmd = new Command('connect')
    .description('start psql or redis-cli connected to a database through its agent')
    .argument('<name>', 'Database name')
    .argument('[client-args...]', 'arguments for psql / redis-cli (after --)')
    .option('--db-user <user>', 'database user (default: the one you logged in with)')
    .option('--db-name <name>', 'PostgreSQL database name');
  return endpointOptions(cmd).action(
    async (
      name: string,
      extra: string[],
      opts: { dbUser?: string; dbName?: string; endpoint?: string; tlsServerName?: string },
      self: Command,
    ) => {
      const open = await openDatabase(self, name, {
        ...opts,
        onForwardError: (e) => io.err(`${e.message}\n`),
      });
      try {
        const client = await clientCommand(open, opts, extra);
        if (open.endpoint.via === 'port-forward')
          io.err(`Forwarding to the agent of ${name} through the API server.\n`);
        process.exitCode = await runClient(client);
      } finally {
        await open.endpoint.close();
      }
    },
  );
}
