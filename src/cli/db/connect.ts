// `kubectl db connect NAME`: starts psql or redis-cli against the agent with the stored client
// certificate. The agent must prove it serves *this* Database: its certificate has to name the
// Database's Service name, whether the bytes go there, to --endpoint or through a port-forward on
// 127.0.0.1. One handshake checks that before the client starts (a wrong agent gets a clear error);
// psql then checks it again itself (sslmode=verify-full with host = that name). redis-cli checks the CA
// but not the name, so it talks plaintext to a relay on a Unix socket in a directory only this user
// can open, and the relay makes each connection with the name check. Arguments after `--` go to the
// client unchanged.
import { spawn } from 'node:child_process';
import { lookup } from 'node:dns/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { backendAddress } from '../../api/database.js';
import { DrawbridgeError } from '../../errors.js';
import { dialAgent, readClientTls } from './dial.js';
import type { Endpoint } from './endpoint.js';
import type { Io } from './io.js';
import { printable } from './printable.js';
import { otherClient } from './other-client.js';
import { startProxy } from './proxy.js';
import type { StoredLogin } from './store.js';
import { type OpenDatabase, endpointOptions, openDatabase } from './target-db.js';

export interface ClientCommand {
  command: string;
  args: string[];
  /** Added to the environment the client inherits. */
  env?: Record<string, string>;
  /** Releases what the client needed (the Redis relay) once it has exited. */
  close?(): Promise<void>;
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
 * redis-cli on the relay's Unix socket. The agent knows the person from the certificate; AUTH only
 * picks the database user (Redis's own `default` when there is none). Its password matters only to
 * passthrough backends, so a REDISCLI_AUTH the person set is kept, and a placeholder stands in
 * otherwise: redis-cli sends no AUTH without one.
 */
export function redisCliCommand(socketPath: string, dbUser: string, extra: string[]): ClientCommand {
  const auth = dbUser === 'default' ? [] : ['--user', dbUser];
  return {
    command: 'redis-cli',
    args: ['-s', socketPath, ...auth, ...extra],
    ...(auth.length ? { env: { REDISCLI_AUTH: process.env.REDISCLI_AUTH ?? 'client-certificate' } } : {}),
  };
}

/** The name-checking relay for redis-cli, on a socket in a fresh directory that only we may enter. */
async function redisRelay(open: OpenDatabase): Promise<{ path: string; close(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'kubectl-db-')); // mode 0700
  const path = join(dir, 'redis.sock');
  const proxy = await startProxy({
    protocol: 'redis',
    ref: open.ref,
    agent: open.endpoint,
    listen: { path },
  });
  return {
    path,
    close: async () => {
      await proxy.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** One TLS handshake with the agent, checking its name, before any client starts. */
async function verifyAgent(open: OpenDatabase): Promise<void> {
  const tls = await dialAgent(open.db.spec.protocol, open.endpoint, await readClientTls(open.login));
  tls.end();
}

/** An IP for libpq's hostaddr when the TLS name differs from where the bytes go. */
async function hostaddrFor(endpoint: Endpoint): Promise<string | undefined> {
  if (endpoint.host === endpoint.serverName) return undefined;
  return isIP(endpoint.host) ? endpoint.host : (await lookup(endpoint.host)).address;
}

async function clientCommand(
  open: OpenDatabase,
  opts: { dbUser?: string; dbName?: string },
  extra: string[],
): Promise<ClientCommand> {
  const { db, login, endpoint } = open;
  const dbUser = opts.dbUser ?? login.record.dbUser;
  if (db.spec.protocol === 'redis') {
    const relay = await redisRelay(open);
    return { ...redisCliCommand(relay.path, dbUser, extra), close: relay.close };
  }
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
    .description('start psql, redis-cli or another client connected to a database through its agent')
    .argument('<name>', 'Database name')
    .argument('[client-args...]', 'arguments for the client (after --)')
    .option(
      '--client <command>',
      'another client (pgcli, usql, iredis, or any command): it gets PG*/REDIS_SOCKET and DATABASE_URL',
    )
    .option('--db-user <user>', 'database user (default: the one you logged in with)')
    .option('--db-name <name>', 'PostgreSQL database name');
  return endpointOptions(cmd).action(
    async (
      name: string,
      extra: string[],
      opts: { dbUser?: string; dbName?: string; client?: string; endpoint?: string; tlsServerName?: string },
      self: Command,
    ) => {
      const open = await openDatabase(self, name, {
        ...opts,
        onForwardError: (e) => io.err(`${printable(e.message)}\n`),
      });
      try {
        await verifyAgent(open);
        const client = opts.client
          ? await otherClient(open, opts.client, opts, extra)
          : await clientCommand(open, opts, extra);
        if (open.endpoint.via === 'port-forward')
          io.err(`Forwarding to the agent of ${name} through the API server.\n`);
        try {
          process.exitCode = await runClient(client);
        } finally {
          await client.close?.();
        }
      } finally {
        await open.endpoint.close();
      }
    },
  );
}
