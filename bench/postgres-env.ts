// The processes bench/postgres-bench.ts compares, each in its own process so its CPU and RSS are its
// own: the agent (the real CLI) and the bare Node TLS pipe (bench/pg-tls-pipe.ts), started as every
// bench target is (bench/proxy-process.ts), and pgbouncer (session mode, client certificates); and the
// small process helpers the bench needs around them.
import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { freePort } from '../test/support/ports.js';
import { PG_BIN } from '../test/support/postgres.js';
import { type ProxyProcess, startAgentProcess, startPipeProcess } from './proxy-process.js';

export const USER = 'bench';
export const PASSWORD = 'bench-scram-password';

export function run(cmd: string, args: string[], env: object = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}:\n${out}`)),
    );
  });
}

export async function waitPort(port: number, conninfo: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      await run(path.join(PG_BIN, 'psql'), [conninfo, '-X', '-c', 'select 1']);
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`nothing answers on port ${port}`);
}

/**
 * CPU time a process and its live children (an agent's workers) have used, in seconds: user (its own
 * code) and system (mostly the loopback TCP it drives).
 */
export function cpuSeconds(pid: number): { user: number; system: number } {
  const own = ownCpuSeconds(pid);
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').split(' ').filter(Boolean);
  return children
    .map((child) => cpuSeconds(Number(child)))
    .reduce((sum, c) => ({ user: sum.user + c.user, system: sum.system + c.system }), own);
}

/** CPU time of the process alone (an agent's primary, without its workers), in seconds. */
export function ownCpuSeconds(pid: number): { user: number; system: number } {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return { user: Number(fields[11]) / 100, system: Number(fields[12]) / 100 };
}

/** bench/pg-tls-pipe.ts in its own process (its CPU and RSS are its own), once it listens. */
export function startPipe(dir: string, pgPort: number): Promise<ProxyProcess> {
  const file = (name: string) => path.join(dir, name);
  const args = [file('proxy.crt'), file('proxy.key'), file('ca.crt'), file('pg-ca.crt')];
  return startPipeProcess('node-pipe', 'pg-tls-pipe.js', [String(pgPort), ...args]);
}

export interface AgentOptions {
  pgPort: number;
  pgCaPem: string;
  clientCaPem: string;
  serving: { certPem: string; keyPem: string };
  /** Sessions the agent must admit (one bench identity holds them all). */
  maxSessions: number;
  /** Names its own directory under the bench's (config, audit log): several agents may run side by side. */
  name: string;
  /** The CLI to run (cliOf(dist)), by default this build's; another build's (BENCH_AGENT_BEFORE) for before/after. */
  cli?: string;
  /** BENCH_AGENT_BEFORE's agent (startAgentProcess). */
  before?: boolean;
  /** Its worker processes (`--workers`; 1, a single process, unless asked). */
  workers?: number;
}

/** The agent in its own process, started as every bench target is (bench/proxy-process.ts). */
export function startAgent(
  dir: string,
  { pgPort, pgCaPem, clientCaPem, serving, maxSessions, name, cli, before, workers }: AgentOptions,
): Promise<ProxyProcess> {
  const meta = (name: string) => ({ name });
  return startAgentProcess({
    name,
    dir,
    cli,
    before,
    workers,
    database: 'bench-pg',
    tls: { certPem: serving.certPem, keyPem: serving.keyPem, clientCaPem },
    // One bench identity holds every idle session: lift the per-identity and per-agent caps to them.
    limits: { maxConnections: maxSessions, maxConnectionsPerIdentity: maxSessions },
    docs: [
      {
        apiVersion: 'drawbridge.dev/v1alpha1',
        kind: 'Database',
        metadata: { ...meta('bench-pg'), labels: { env: 'bench' } },
        spec: {
          protocol: 'postgres',
          uri: `postgres://127.0.0.1:${pgPort}`,
          tls: { mode: 'verify-full', caSecretRef: { name: 'pg-ca', key: 'ca.crt' } },
          auth: { type: 'password', secretRef: { name: 'pg-passwords' } },
        },
      },
      { apiVersion: 'v1', kind: 'Secret', metadata: meta('pg-ca'), stringData: { 'ca.crt': pgCaPem } },
      { apiVersion: 'v1', kind: 'Secret', metadata: meta('pg-passwords'), stringData: { [USER]: PASSWORD } },
      {
        apiVersion: 'drawbridge.dev/v1alpha1',
        kind: 'AccessRole',
        metadata: meta('bench'),
        spec: { allow: { databaseLabels: { env: 'bench' }, databaseUsers: [USER], databaseNames: [USER] } },
      },
      {
        apiVersion: 'drawbridge.dev/v1alpha1',
        kind: 'DatabaseUser',
        metadata: meta(USER),
        spec: { subjects: [{ kind: 'User', name: USER }], roles: ['bench'] },
      },
    ],
  });
}

/** pgbouncer refuses to run as root: its files go to a directory the postgres user owns. */
export async function startPgbouncer(
  dir: string,
  pgPort: number,
  maxSessions: number,
): Promise<ChildProcess & { port: number }> {
  const port = await freePort();
  const file = (name: string) => path.join(dir, name);
  await writeFile(file('userlist.txt'), `"${USER}" "${PASSWORD}"\n`, { mode: 0o600 });
  const ini = [
    '[databases]',
    `${USER} = host=127.0.0.1 port=${pgPort} dbname=${USER}`,
    '[pgbouncer]',
    'listen_addr = 127.0.0.1',
    `listen_port = ${port}`,
    'unix_socket_dir =',
    'pool_mode = session',
    'auth_type = cert',
    `auth_file = ${file('userlist.txt')}`,
    `max_client_conn = ${maxSessions}`,
    'default_pool_size = 50',
    'client_tls_sslmode = verify-full',
    `client_tls_cert_file = ${file('proxy.crt')}`,
    `client_tls_key_file = ${file('proxy.key')}`,
    `client_tls_ca_file = ${file('ca.crt')}`,
    'server_tls_sslmode = verify-full',
    `server_tls_ca_file = ${file('pg-ca.crt')}`,
    `logfile = ${file('pgbouncer.log')}`,
    'log_connections = 0',
    'log_disconnections = 0',
  ];
  await writeFile(file('pgbouncer.ini'), ini.join('\n') + '\n');
  const user = process.getuid?.() === 0 ? await postgresIds() : undefined;
  if (user) {
    chownSync(dir, user.uid, user.gid);
    for (const f of ['userlist.txt', 'pgbouncer.ini', 'proxy.key', 'proxy.crt', 'ca.crt', 'pg-ca.crt']) {
      chownSync(file(f), user.uid, user.gid);
    }
  }
  const child = spawn('pgbouncer', [file('pgbouncer.ini')], {
    ...user,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return Object.assign(child, { port });
}

async function postgresIds(): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => Number((await run('id', [flag, 'postgres'])).trim());
  return { uid: await id('-u'), gid: await id('-g') };
}

/** Opens `n` sessions to `port` from this process (not the proxy's), 50 at a time. */
export async function openIdleSessions(
  port: number,
  files: [string, string, number][],
  n: number,
  password?: string,
): Promise<pg.Client[]> {
  const pem = (name: string) => files.find(([f]) => f === name)![1];
  const ssl = { ca: pem('ca.crt'), cert: pem('client.crt'), key: pem('client.key'), servername: 'localhost' };
  const clients: pg.Client[] = [];
  for (let i = 0; i < n; i += 50) {
    const batch = Array.from(
      { length: Math.min(50, n - i) },
      () => new pg.Client({ host: '127.0.0.1', port, user: USER, database: USER, password, ssl }),
    );
    await Promise.all(batch.map((c) => c.connect()));
    clients.push(...batch);
  }
  return clients;
}
