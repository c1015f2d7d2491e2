// `kubectl db connect NAME --client CMD`: any client, not only psql and redis-cli. It cannot be trusted
// to check the agent's certificate name or to hold our client key, so it talks plaintext to a relay on
// a Unix socket in a directory only this user can open (as redis-cli does), and the relay makes each
// connection to the agent with the name check and the login's certificate. The client finds the
// socket in the usual variables (PGHOST/PGPORT for libpq-based clients, REDIS_SOCKET) and DATABASE_URL;
// clients known to take a URL get it as their first argument.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { backendAddress } from '../../api/database.js';
import type { ClientCommand } from './connect.js';
import { startProxy } from './proxy.js';
import type { OpenDatabase } from './target-db.js';

/** Clients that take the connection URL as an argument, and how. */
const URL_ARGS: Record<string, (url: string) => string[]> = {
  pgcli: (url) => [url],
  usql: (url) => [url],
  iredis: (url) => ['--url', url],
};

/** libpq looks for the socket `.s.PGSQL.<port>` in the directory PGHOST names. */
const PG_SOCKET_PORT = 5432;

export async function otherClient(
  open: OpenDatabase,
  command: string,
  opts: { dbUser?: string; dbName?: string },
  extra: string[],
): Promise<ClientCommand> {
  const { db } = open;
  const dir = await mkdtemp(join(tmpdir(), 'kubectl-db-')); // mode 0700
  const postgres = db.spec.protocol === 'postgres';
  const path = join(dir, postgres ? `.s.PGSQL.${PG_SOCKET_PORT}` : 'redis.sock');
  const proxy = await startProxy({
    protocol: db.spec.protocol,
    ref: open.ref,
    agent: open.endpoint,
    listen: { path },
  });
  const user = opts.dbUser ?? open.login.record.dbUser;
  const u = encodeURIComponent;
  let env: Record<string, string>;
  let url: string;
  if (postgres) {
    const database = opts.dbName ?? backendAddress(db.spec).database ?? user;
    url = `postgresql://${u(user)}@/${u(database)}?host=${u(dir)}&port=${PG_SOCKET_PORT}&sslmode=disable`;
    env = {
      PGHOST: dir,
      PGPORT: String(PG_SOCKET_PORT),
      PGUSER: user,
      PGDATABASE: database,
      PGSSLMODE: 'disable',
    };
  } else {
    url = `unix://${u(user)}@${path}`;
    env = { REDIS_SOCKET: path, REDIS_USER: user };
  }
  return {
    command,
    args: [...(URL_ARGS[basename(command)]?.(url) ?? []), ...extra],
    env: { ...env, DATABASE_URL: url },
    close: async () => {
      await proxy.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
