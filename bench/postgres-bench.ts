// `bench/postgres.sh`: PostgreSQL throughput and connect cost, direct vs. through the agent vs. through
// pgbouncer (session mode), in one run on the same server, with the same TLS set-up: verify-full TLS on
// every hop, client certificates to the agent and to pgbouncer (auth_type cert), SCRAM to the server.
// Then the agent's RSS with 1,000 idle sessions. The agent runs as its own process (the real CLI), so
// its RSS and CPU are its own.
import { type ChildProcess, spawn } from 'node:child_process';
import { chownSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createCA, issueCertificate } from '../src/pki/ca.js';
import { writeAgentConfig } from '../test/support/agent.js';
import { freePort } from '../test/support/ports.js';
import { PG_BIN, startPostgres } from '../test/support/postgres.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 20);
const CONNECT_DURATION = Number(process.env.BENCH_CONNECT_DURATION ?? 10);
const IDLE_SESSIONS = Number(process.env.BENCH_IDLE_SESSIONS ?? 1000);
/** pgbench's query mode (-M): simple, extended (Parse/Bind/Execute per query) or prepared. */
const MODE = process.env.BENCH_PG_MODE ?? 'simple';
const IDLE_SETTLE_MS = 15_000;
const USER = 'bench';
const PASSWORD = 'bench-scram-password';

function run(cmd: string, args: string[], env: object = {}): Promise<string> {
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

async function waitPort(port: number, conninfo: string): Promise<void> {
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

/** SIGTERM (the agent drains and exits, writing any profile), SIGKILL after 15 s. */
async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(15_000)]);
  child.kill('SIGKILL');
}

/** CPU time (user + system) a process has used, in seconds; /proc counts in 1/100 s ticks. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Runs pgbench and reports the proxy's CPU per transaction: a figure other load on the machine barely moves. */
async function pgbenchProxy(
  pid: number,
  conninfo: string,
  args: string[],
  env: object = {},
): Promise<PgbenchResult & { cpuUs: number }> {
  const cpu = cpuSeconds(pid);
  const out = await pgbenchRaw(conninfo, args, env);
  return { ...out, cpuUs: ((cpuSeconds(pid) - cpu) * 1e6) / out.transactions };
}

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) / 1024;
}

interface PgbenchResult {
  tps: number;
  connectMs: number;
  transactions: number;
}

async function pgbenchRaw(conninfo: string, args: string[], env: object = {}): Promise<PgbenchResult> {
  const out = await run(path.join(PG_BIN, 'pgbench'), ['-n', ...args, conninfo], env);
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
  const connectMs = Number(/average connection time = ([\d.]+) ms/.exec(out)?.[1]);
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
  if (!Number.isFinite(tps)) throw new Error(`unexpected pgbench output:\n${out}`);
  return { tps, connectMs, transactions };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-bench-pg-'));
  const cleanups: (() => Promise<unknown> | void)[] = [() => rm(dir, { recursive: true, force: true })];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    await bench(dir, cleanups);
  } finally {
    await cleanup();
  }
}

async function bench(dir: string, cleanups: (() => Promise<unknown> | void)[]): Promise<void> {
  const file = (name: string) => path.join(dir, name);
  const server = await startPostgres({
    roles: [{ name: USER, password: PASSWORD }],
    databases: [USER],
    maxConnections: IDLE_SESSIONS + 100,
  });
  cleanups.push(() => server.stop());

  // One CA for the agent's and pgbouncer's serving certificates and for the client certificate.
  const ca = await createCA({ commonName: 'bench CA' });
  const serving = await issueCertificate(ca, {
    commonName: 'bench proxy',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  const client = await issueCertificate(ca, { commonName: USER, usage: 'client' });
  const files: [string, string, number][] = [
    ['ca.crt', ca.certPem, 0o644],
    ['client.crt', client.certPem, 0o644],
    ['client.key', client.keyPem, 0o600],
    ['proxy.crt', serving.certPem, 0o644],
    ['proxy.key', serving.keyPem, 0o600],
    ['pg-ca.crt', server.ca.certPem, 0o644],
  ];
  for (const [name, content, mode] of files) await writeFile(file(name), content, { mode });

  const direct = `host=127.0.0.1 port=${server.port} dbname=${USER} user=${USER} sslmode=verify-full sslrootcert=${file('pg-ca.crt')}`;
  const viaCert = (port: number) =>
    `host=127.0.0.1 port=${port} dbname=${USER} user=${USER} sslmode=verify-full sslrootcert=${file('ca.crt')} ` +
    `sslcert=${file('client.crt')} sslkey=${file('client.key')}`;
  const pwEnv = { PGPASSWORD: PASSWORD };
  await run(path.join(PG_BIN, 'pgbench'), ['-i', '-q', '-s', '10', direct], pwEnv);

  const agent = await startAgent(dir, server.port, server.ca.certPem, ca.certPem, serving);
  cleanups.push(() => stopProcess(agent.child));
  const bouncer = await startPgbouncer(dir, server.port);
  cleanups.push(() => stopProcess(bouncer));
  await waitPort(agent.port, viaCert(agent.port));
  await waitPort(bouncer.port, viaCert(bouncer.port));
  const pipe = await startPipe(dir, server.port);
  cleanups.push(() => stopProcess(pipe.child));
  const atStart = rssMb(agent.child.pid!);

  const select = ['-S', '-M', MODE, '-c', '8', '-j', '2', '-T', String(DURATION)];
  const connect = ['-S', '-C', '-c', '1', '-j', '1', '-T', String(CONNECT_DURATION)];
  console.log(
    `pgbench -S -M ${MODE} -c 8 -j 2 -T ${DURATION} (TLS everywhere; ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)})`,
  );
  const cpu = (r: { cpuUs: number }) => `${r.cpuUs.toFixed(0).padStart(6)} µs proxy CPU per transaction`;
  const d = await pgbenchRaw(direct, select, pwEnv);
  console.log(`  direct      ${d.tps.toFixed(0).padStart(8)} tps`);
  const a = await pgbenchProxy(agent.child.pid!, viaCert(agent.port), select);
  console.log(`  agent       ${a.tps.toFixed(0).padStart(8)} tps   ${cpu(a)}`);
  const b = await pgbenchProxy(bouncer.pid!, viaCert(bouncer.port), select);
  console.log(`  pgbouncer   ${b.tps.toFixed(0).padStart(8)} tps   ${cpu(b)}`);
  // The pipe passes SCRAM through; channel binding would bind to its certificate, not the server's.
  const viaPipe = `${viaCert(pipe.port)} channel_binding=disable`;
  const p = await pgbenchProxy(pipe.child.pid!, viaPipe, select, pwEnv);
  console.log(
    `  node-pipe   ${p.tps.toFixed(0).padStart(8)} tps   ${cpu(p)}  (bare Node TLS pipe: the floor)`,
  );

  console.log(`pgbench -S -C -c 1 -T ${CONNECT_DURATION} (a new TLS connection per transaction)`);
  const dc = await pgbenchRaw(direct, connect, pwEnv);
  console.log(`  direct      ${dc.connectMs.toFixed(2).padStart(8)} ms per connection`);
  const ac = await pgbenchProxy(agent.child.pid!, viaCert(agent.port), connect);
  console.log(`  agent       ${ac.connectMs.toFixed(2).padStart(8)} ms per connection   ${cpu(ac)}`);
  const bc = await pgbenchProxy(bouncer.pid!, viaCert(bouncer.port), connect);
  console.log(
    `  pgbouncer   ${bc.connectMs.toFixed(2).padStart(8)} ms per connection   ${cpu(bc)} (reuses server connections)`,
  );

  const before = rssMb(agent.child.pid!);
  const idle = await openIdleSessions(agent.port, files, IDLE_SESSIONS);
  await sleep(2000);
  const justOpened = rssMb(agent.child.pid!);
  // The handshakes' garbage is still in V8's young generation now; V8 hands it back once allocation
  // stops (its memory reducer runs after ~8 s). The idle figure is the one after that.
  await sleep(IDLE_SETTLE_MS - 2000);
  const withIdle = rssMb(agent.child.pid!);
  await Promise.all(idle.map((c) => c.end().catch(() => undefined)));
  const perSessionKb = ((withIdle - before) * 1024) / idle.length;
  // The same for the bare Node TLS pipe: what 1,000 idle TLS-to-TLS pairs cost Node itself.
  await sleep(2000);
  const pipeBefore = rssMb(pipe.child.pid!);
  const pipeIdle = await openIdleSessions(pipe.port, files, IDLE_SESSIONS, PASSWORD);
  await sleep(IDLE_SETTLE_MS);
  const pipeWithIdle = rssMb(pipe.child.pid!);
  await Promise.all(pipeIdle.map((c) => c.end().catch(() => undefined)));
  console.log(
    `agent RSS: ${atStart.toFixed(0)} MB at start, ${before.toFixed(0)} MB after the runs, ` +
      `${justOpened.toFixed(0)} MB 2 s after opening ${idle.length} idle sessions, ` +
      `${withIdle.toFixed(0)} MB after ${IDLE_SETTLE_MS / 1000} s (${perSessionKb.toFixed(0)} KB per session)`,
  );
  console.log(
    `node-pipe RSS: ${pipeBefore.toFixed(0)} MB before, ${pipeWithIdle.toFixed(0)} MB with ${pipeIdle.length} idle ` +
      `sessions (${(((pipeWithIdle - pipeBefore) * 1024) / pipeIdle.length).toFixed(0)} KB per session)`,
  );

  const checks: [string, number, string, boolean][] = [
    ['agent / direct TPS', a.tps / d.tps, '>= 0.85', a.tps / d.tps >= 0.85],
    ['agent / pgbouncer TPS', a.tps / b.tps, '>= 1.0', a.tps / b.tps >= 1.0],
    ['added connect latency (ms)', ac.connectMs - dc.connectMs, '<= 3', ac.connectMs - dc.connectMs <= 3],
    [`agent RSS, ${IDLE_SESSIONS} idle sessions (MB)`, withIdle, '<= 120', withIdle <= 120],
  ];
  // Node's own floor, for reading the misses: a proxy that does nothing but TLS on both hops.
  const floor: [string, number][] = [
    ['agent / node-pipe TPS', a.tps / p.tps],
    ['node-pipe / pgbouncer TPS', p.tps / b.tps],
    [`node-pipe RSS, ${IDLE_SESSIONS} idle sessions (MB)`, pipeWithIdle],
  ];
  console.log('summary');
  for (const [label, value, target, ok] of checks) {
    console.log(
      `  ${label.padEnd(40)} ${value.toFixed(2).padStart(8)}   target ${target.padEnd(7)} ${ok ? 'met' : 'MISSED'}`,
    );
  }
  for (const [label, value] of floor) console.log(`  ${label.padEnd(40)} ${value.toFixed(2).padStart(8)}`);
}

/** bench/pg-tls-pipe.ts in its own process (its CPU and RSS are its own), once it listens. */
async function startPipe(dir: string, pgPort: number): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const file = (name: string) => path.join(dir, name);
  const script = path.resolve(path.dirname(new URL(import.meta.url).pathname), 'pg-tls-pipe.js');
  const args = [file('proxy.crt'), file('proxy.key'), file('ca.crt'), file('pg-ca.crt')];
  const child = spawn(process.execPath, [script, String(port), String(pgPort), ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`the Node TLS pipe exited (${code})`)));
  });
  return { child, port };
}

async function startAgent(
  dir: string,
  pgPort: number,
  pgCaPem: string,
  clientCaPem: string,
  serving: { certPem: string; keyPem: string },
): Promise<{ child: ChildProcess; port: number }> {
  const port = await freePort();
  const meta = (name: string) => ({ name });
  const { configPath } = await writeAgentConfig(dir, {
    database: 'bench-pg',
    listen: `127.0.0.1:${port}`,
    tls: { certPem: serving.certPem, keyPem: serving.keyPem, clientCaPem },
    // One bench identity holds every idle session: lift the per-identity and per-agent caps above them.
    limits: { maxConnections: IDLE_SESSIONS + 100, maxConnectionsPerIdentity: IDLE_SESSIONS + 100 },
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
  const cli = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../src/cli/drawbridge.js');
  // BENCH_AGENT_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the agent.
  const nodeArgs = process.env.BENCH_AGENT_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, cli, 'agent', '--config', configPath], {
    env: { ...process.env, DRAWBRIDGE_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return { child, port };
}

/** pgbouncer refuses to run as root: its files go to a directory the postgres user owns. */
async function startPgbouncer(dir: string, pgPort: number): Promise<ChildProcess & { port: number }> {
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
    `max_client_conn = ${IDLE_SESSIONS + 100}`,
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

/** Opens `n` sessions through the agent from this process (not the agent's), 50 at a time. */
async function openIdleSessions(
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

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
