// `make demo`: real PostgreSQL, Redis and a 6-node Redis Cluster on loopback, a `drawbridge agent`
// process in front of each, and the real clients (psql, redis-cli) going through them with a
// short-lived client certificate for alice. Everything started here is stopped on the way out, on
// Ctrl+C (SIGINT), SIGTERM or SIGHUP too; the demo's files stay only when it ran to the end.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCA, issueCertificate } from '../src/pki/ca.js';
import { writeAgentConfig } from '../test/support/agent.js';
import { freePort } from '../test/support/ports.js';
import { startPostgres } from '../test/support/postgres.js';
import { CLUSTER_USERS, RedisCluster } from '../test/support/redis-cluster.js';
import { REDIS_USERS, startRedis } from '../test/support/redis.js';

const API = 'drawbridge.dev/v1alpha1';
const cleanups: (() => Promise<unknown> | unknown)[] = [];
/** Set once a signal, a failure or the end starts the cleanup: nothing new is started after it. */
let stopping = false;
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

function step(title: string): void {
  if (stopping) throw new Error('stopping');
  console.log(`\n${bold(`▶ ${title}`)}`);
}

/** Runs a client and shows its command line and output, as a person would see them. */
function show(cmd: string, args: string[], shown: string): void {
  console.log(`$ ${shown}`);
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, PGCONNECT_TIMEOUT: '10' } });
  const out = (r.stdout + r.stderr).trimEnd();
  if (out) console.log(out.replace(/^/gm, '  '));
}

async function startAgent(
  dir: string,
  database: string,
  docs: object[],
  tls: { certPem: string; keyPem: string; clientCaPem: string },
) {
  const port = await freePort();
  const agentDir = path.join(dir, database);
  await mkdir(agentDir, { recursive: true });
  const files = await writeAgentConfig(agentDir, { database, docs, tls, listen: `127.0.0.1:${port}` });
  const bin = path.join(import.meta.dirname, '../src/cli/drawbridge.js');
  if (stopping) throw new Error('stopping');
  const child: ChildProcess = spawn(process.execPath, [bin, 'agent', '--config', files.configPath], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, DRAWBRIDGE_LOG_LEVEL: 'warn' },
  });
  cleanups.push(
    () =>
      new Promise((r) =>
        child.exitCode !== null ? r(null) : (child.once('exit', r), child.kill('SIGTERM')),
      ),
  );
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect(port, '127.0.0.1', () => (s.destroy(), r(true))).on('error', () => r(false));
    });
    if (ok) return { port, auditPath: files.auditPath };
    await sleep(100);
  }
  throw new Error(`agent for ${database} did not start listening on port ${port}`);
}

const role = (name: string, allow: object, deny: object = {}) => ({
  apiVersion: API,
  kind: 'AccessRole',
  metadata: { name },
  spec: { allow, deny, options: { maxSessionTTL: '1h' } },
});
const dbUser = (name: string, roles: string[], traits: object = {}) => ({
  apiVersion: API,
  kind: 'DatabaseUser',
  metadata: { name },
  spec: { subjects: [{ kind: 'User', name }], roles, traits },
});

const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-demo-'));
const file = (n: string) => path.join(dir, n);

async function main(): Promise<void> {
  step(
    'A throwaway CA, the agent serving certificate and a 1-hour client certificate for alice (CN=alice, O=dev)',
  );
  const ca = await createCA({ commonName: 'drawbridge demo CA' });
  const serving = await issueCertificate(ca, {
    commonName: 'agent',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  const alice = await issueCertificate(ca, {
    commonName: 'alice',
    organizations: ['dev'],
    validSeconds: 3600,
    usage: 'client',
  });
  await writeFile(file('ca.crt'), ca.certPem);
  await writeFile(file('alice.crt'), alice.certPem);
  await writeFile(file('alice.key'), alice.keyPem, { mode: 0o600 });
  const tls = { certPem: serving.certPem, keyPem: serving.keyPem, clientCaPem: ca.certPem };
  console.log(`  ${dir}/{ca.crt,alice.crt,alice.key}`);

  step('PostgreSQL 15 (SCRAM + TLS) and an agent in front of it');
  const pg = await startPostgres({
    roles: [
      { name: 'alice_ro', password: 'pg-secret-ro' },
      { name: 'admin', password: 'pg-secret-admin', superuser: true },
    ],
    databases: ['orders'],
  });
  cleanups.push(() => pg.stop());
  await pg.admin(
    'CREATE TABLE IF NOT EXISTS items(id int, name text); INSERT INTO items VALUES (1, $$widget$$), (2, $$gadget$$); GRANT SELECT ON items TO alice_ro;',
    'orders',
  );
  const pgDocs = [
    {
      apiVersion: API,
      kind: 'Database',
      metadata: { name: 'orders', labels: { env: 'prod', engine: 'postgres' } },
      spec: {
        protocol: 'postgres',
        uri: `postgres://${pg.host}:${pg.port}`,
        tls: { mode: 'verify-full', caSecretRef: { name: 'pg-ca', key: 'ca.crt' } },
        auth: { type: 'password', secretRef: { name: 'pg-users' } },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'pg-users' },
      stringData: { alice_ro: 'pg-secret-ro', admin: 'pg-secret-admin' },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'pg-ca' },
      stringData: { 'ca.crt': pg.ca.certPem },
    },
    role(
      'dev',
      {
        databaseLabels: { env: ['prod', 'staging'] },
        databaseUsers: ['{{traits.dbUsers}}'],
        databaseNames: ['orders'],
        redisCommands: ['@read', '@write', '@connection', 'dbsize'],
      },
      { redisCommands: ['@dangerous'] },
    ),
    dbUser('alice', ['dev'], { dbUsers: ['alice_ro', 'app'] }),
  ];
  const pgAgent = await startAgent(dir, 'orders', pgDocs, tls);
  const pgConn = (user: string) =>
    `host=127.0.0.1 port=${pgAgent.port} user=${user} dbname=orders sslmode=verify-full sslrootcert=${file('ca.crt')} sslcert=${file('alice.crt')} sslkey=${file('alice.key')}`;
  console.log(`  postgres on ${pg.port}, agent on ${pgAgent.port}; alice holds no database password`);

  step('alice queries as alice_ro (allowed by role "dev")');
  show(
    'psql',
    [pgConn('alice_ro'), '-c', 'select current_user, count(*) as items from items'],
    `psql "host=127.0.0.1 port=${pgAgent.port} user=alice_ro dbname=orders sslmode=verify-full sslcert=alice.crt ..." -c "select ..."`,
  );

  step('alice tries to connect as admin (denied: not in her database users)');
  show('psql', [pgConn('admin'), '-c', 'select 1'], `psql "... user=admin dbname=orders ..." -c "select 1"`);

  step('Redis 7 (TLS + ACL users) and an agent in front of it');
  const redis = await startRedis();
  cleanups.push(() => redis.stop());
  const redisDocs = (
    name: string,
    uri: string,
    caPem: string,
    users: Record<string, { password: string }>,
  ) => [
    {
      apiVersion: API,
      kind: 'Database',
      metadata: { name, labels: { env: 'prod', engine: 'redis' } },
      spec: {
        protocol: 'redis',
        uri,
        tls: { mode: 'verify-full', caSecretRef: { name: `${name}-ca`, key: 'ca.crt' } },
        auth: { type: 'password', secretRef: { name: `${name}-users` } },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: `${name}-users` },
      stringData: Object.fromEntries(Object.entries(users).map(([u, v]) => [u, v.password])),
    },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: `${name}-ca` }, stringData: { 'ca.crt': caPem } },
    pgDocs[3]!,
    pgDocs[4]!,
  ];
  const cacheAgent = await startAgent(
    dir,
    'cache',
    redisDocs('cache', `rediss://127.0.0.1:${redis.tlsPort}`, redis.ca.certPem, REDIS_USERS),
    tls,
  );
  const cli = (port: number, ...args: string[]) => [
    '--tls',
    '--cacert',
    file('ca.crt'),
    '--cert',
    file('alice.crt'),
    '--key',
    file('alice.key'),
    '-h',
    '127.0.0.1',
    '-p',
    String(port),
    '--user',
    'app',
    '--pass',
    'ignored',
    '--no-auth-warning',
    ...args,
  ];
  const shownCli = (port: number, args: string) =>
    `redis-cli --tls --cert alice.crt --key alice.key -p ${port} --user app ${args}`;
  show(
    'redis-cli',
    cli(cacheAgent.port, 'SET', 'demo:greeting', 'hello'),
    shownCli(cacheAgent.port, 'SET demo:greeting hello'),
  );
  show(
    'redis-cli',
    cli(cacheAgent.port, 'GET', 'demo:greeting'),
    shownCli(cacheAgent.port, 'GET demo:greeting'),
  );
  step(
    'The same agent in RESP3 (redis-cli -3: HELLO 3 AUTH, a hash comes back as a map: one line per field)',
  );
  show(
    'redis-cli',
    cli(cacheAgent.port, '-3', 'HSET', 'demo:user', 'name', 'ada', 'lang', 'en'),
    shownCli(cacheAgent.port, '-3 HSET demo:user name ada lang en'),
  );
  show(
    'redis-cli',
    cli(cacheAgent.port, '-3', 'HGETALL', 'demo:user'),
    shownCli(cacheAgent.port, '-3 HGETALL demo:user'),
  );
  step('alice runs FLUSHALL (denied: @dangerous)');
  show('redis-cli', cli(cacheAgent.port, 'FLUSHALL'), shownCli(cacheAgent.port, 'FLUSHALL'));

  step('A 6-node Redis Cluster (3 masters + 3 replicas, TLS, ACLs) behind one agent endpoint');
  const cluster = await RedisCluster.start();
  cleanups.push(() => cluster.stop());
  const clusterAgent = await startAgent(
    dir,
    'sessions',
    redisDocs('sessions', cluster.uri(), cluster.ca.certPem, CLUSTER_USERS),
    tls,
  );
  show(
    'redis-cli',
    cli(clusterAgent.port, 'MSET', 'user:1', 'ada', 'user:2', 'grace', 'user:3', 'linus'),
    shownCli(clusterAgent.port, 'MSET user:1 ada user:2 grace user:3 linus   # keys on different masters'),
  );
  show(
    'redis-cli',
    cli(clusterAgent.port, 'MGET', 'user:1', 'user:2', 'user:3'),
    shownCli(clusterAgent.port, 'MGET user:1 user:2 user:3'),
  );
  show(
    'redis-cli',
    cli(clusterAgent.port, 'DBSIZE'),
    shownCli(clusterAgent.port, 'DBSIZE   # summed over the masters'),
  );

  await sleep(300);
  step('Audit log (JSON lines, one file per agent): each denial with the rule that made it, then what ran');
  for (const p of [pgAgent.auditPath, cacheAgent.auditPath, clusterAgent.auditPath]) {
    const events = (await readFile(p, 'utf8').catch(() => '')).split('\n').filter(Boolean);
    console.log(`  ${path.relative(dir, p)} (${events.length} events), e.g.:`);
    for (const line of auditPicks(events)) console.log(`    ${line}`);
  }
  console.log(`
Done: every server and agent it started is stopped. What it left in ${dir}:
  ca.crt alice.crt alice.key   the throwaway CA and alice's 1-hour client certificate
  */agent.yaml                 what each agent ran: an AgentConfig plus the Database, AccessRole,
                               DatabaseUser and Secret documents it uses
  */audit.jsonl                each agent's audit log, in full
Next: README "Run an agent on a plain host" puts one in front of your own database; make demo-k8s
runs the Kubernetes flow (controller, kubectl db login / connect). rm -rf ${dir} when done.`);
}

/** Denials first (they name the rule), then the first query or command that is not the login. */
function auditPicks(events: string[]): string[] {
  const denied = events.filter((l) => /"type":"(session|command)\.denied"/.test(l));
  const ran = events.filter((l) => /"type":"(query|command)"/.test(l) && !l.includes('"command":"auth"'));
  return [...denied.slice(0, 1), ...ran.slice(0, 2)].map((l) => (l.length > 400 ? `${l.slice(0, 400)}…` : l));
}

async function cleanup(): Promise<void> {
  for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => undefined);
}

/** Stops what was started; the demo's files go too unless it ran to the end (`keep`). */
async function finish(code: number, keep = false): Promise<never> {
  stopping = true;
  await cleanup();
  if (!keep) await rm(dir, { recursive: true, force: true });
  process.exit(code);
}

// A terminal's Ctrl+C reaches the servers and agents too (one process group): they start stopping at
// once, and cleanup waits for each. The servers' own exit handlers remove a half-started one.
const SIGNAL_CODES = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
for (const [signal, code] of Object.entries(SIGNAL_CODES)) {
  process.once(signal, () => {
    if (stopping) return;
    console.error(`\n${signal}: stopping the servers and agents, removing ${dir}`);
    void finish(code);
  });
}
main()
  .then(() => finish(0, true))
  .catch((err: unknown) => {
    // A client or server the signal ended first fails main(): the signal's line said what happened.
    if (stopping) return;
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    console.error(`Stopping the servers and agents it started, removing ${dir}.`);
    void finish(1);
  });
