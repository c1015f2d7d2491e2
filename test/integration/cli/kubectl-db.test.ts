/**
 * `kubectl db` end to end: ls, login through a real CertificateSigningRequest that the real controller
 * approves or denies, connect running psql through the agent, proxy with psql and Ctrl+C cancel, logout.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_BIN } from '../../support/postgres.js';
import { agentName } from '../../../src/operator/names.js';
import { CACHE, type CliFixture, DB, DECOY, NS, type RunResult, startCliFixture } from './fixture.js';

let f: CliFixture;
let endpoint: string;

beforeAll(async () => {
  f = await startCliFixture();
  endpoint = f.agentAddress[DB];
});

afterAll(async () => {
  await f?.stop();
});

const alice = (...args: string[]) => f.kubectlDb(f.kubeconfigs.alice, ['-n', NS, ...args]);
const mallory = (...args: string[]) => f.kubectlDb(f.kubeconfigs.mallory, ['-n', NS, ...args]);
const loginDir = () => path.join(f.home, 'alice', NS, DB);

function expectOk(r: RunResult): void {
  expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
  expect(r.code).toBe(0);
}

/** Runs psql asynchronously: the agent runs in this process and must keep serving meanwhile. */
function psql(
  conninfo: string,
  args: string[],
): { child: ChildProcess; result: Promise<RunResult & { ms: number }> } {
  const started = Date.now();
  const child = spawn(path.join(PG_BIN, 'psql'), [conninfo, '-X', ...args], {
    env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const result = new Promise<RunResult & { ms: number }>((resolve) =>
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started })),
  );
  return { child, result };
}

describe('kubectl db ls', () => {
  it('lists the databases a person may reach with the allowed database users', async () => {
    const r = await alice('ls');
    expectOk(r);
    const [header, ...rows] = r.stdout.trim().split('\n');
    const row = rows.find((l) => l.startsWith(`${DB} `));
    expect(
      rows
        .find((l) => l.startsWith(`${CACHE} `))!
        .split(/\s{2,}/)
        .slice(0, 4),
    ).toEqual([CACHE, 'redis', 'admin', '-']);
    expect(header!.split(/\s{2,}/)).toEqual([
      'NAME',
      'PROTOCOL',
      'DB USERS',
      'DB NAMES',
      'MAX TTL',
      'STATUS',
      'LOGGED IN',
    ]);
    expect(row!.split(/\s{2,}/).slice(0, 5)).toEqual([DB, 'postgres', 'alice', 'orders', '1h']);
    expect(row).toMatch(/\s-$/);
  });

  it('says so when no DatabaseUser binds the person', async () => {
    const r = await mallory('ls');
    expectOk(r);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(`no databases reachable for user "mallory" in namespace ${NS}`);
  });
});

describe('kubectl db login', () => {
  it('gets a certificate through a CSR the controller approves, and keeps the key local', async () => {
    const r = await alice('login', DB, '--db-user', 'alice', '--ttl', '30m', '--timeout', '60s');
    expectOk(r);
    expect(r.stdout).toContain(`Logged in to ${NS}/${DB} as database user "alice"`);
    expect(r.stderr).toMatch(/db-shop-orders-pg-\w+: certificate issued/);

    const dir = loginDir();
    const cert = new X509Certificate(await readFile(path.join(dir, 'tls.crt'), 'utf8'));
    expect(cert.subject.split('\n')).toEqual(expect.arrayContaining(['CN=alice', 'O=devs']));
    const lifetime = new Date(cert.validTo).getTime() - Date.now();
    expect(lifetime).toBeGreaterThan(25 * 60_000);
    expect(lifetime).toBeLessThanOrEqual(31 * 60_000);
    expect(await readFile(path.join(dir, 'ca.crt'), 'utf8')).toBe(f.caPem);
    for (const file of ['tls.key', 'tls.crt', 'ca.crt']) {
      expect((await stat(path.join(dir, file))).mode & 0o777).toBe(0o600);
    }
    // The CSR carries the request only: the private key is nowhere in the cluster.
    const key = await readFile(path.join(dir, 'tls.key'), 'utf8');
    const csrs = await f.plane.kubectl(['get', 'csr', '-o', 'json']);
    expect(csrs).toContain('"drawbridge.dev/db-user": "alice"');
    expect(csrs).not.toContain(key.split('\n')[1]!);
  });

  it('shows the login in kubectl db ls', async () => {
    const r = await alice('ls');
    expect(r.stdout).toMatch(new RegExp(`^${DB} .* alice \\((29m|30m)\\d*s? left\\)$`, 'm'));
  });

  it('fails with the denial reason when no role allows the person', async () => {
    const r = await mallory('login', DB, '--db-user', 'alice', '--timeout', '60s');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^error: certificate request db-shop-orders-pg-\w+ was denied \(AccessDenied\): .*mallory/m,
    );
    expect(r.stderr).toContain('kubectl db ls shows the databases and database users your roles allow');
  });

  it('fails when the database user is not one the roles allow', async () => {
    const r = await alice('login', DB, '--db-user', 'postgres', '--timeout', '60s');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /was denied \(AccessDenied\): .*database user "postgres" is not in allow.databaseUsers/,
    );
  });

  it('names a missing database and how to find the right one', async () => {
    const r = await alice('login', 'nope', '--db-user', 'alice');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`error: database ${NS}/nope not found`);
    expect(r.stderr).toContain('kubectl db ls lists the databases you can reach');
  });
});

describe('kubectl db connect', () => {
  it('runs psql against the agent with the stored certificate (sslmode=verify-full)', async () => {
    const r = await alice(
      'connect',
      DB,
      '--endpoint',
      endpoint,
      '--',
      '-X',
      '-Atc',
      'select current_user, current_database()',
    );
    expectOk(r);
    expect(r.stdout.trim()).toBe('alice|orders');
    const audit = (await f.agentLogs())
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { type?: string; user?: string; dbUser?: string });
    expect(audit).toContainEqual(
      expect.objectContaining({ type: 'session.start', user: 'alice', dbUser: 'alice' }),
    );
  });

  it('refuses an agent whose certificate does not name the Database, such as the loopback name of a port-forward', async () => {
    const r = await alice(
      'connect',
      DB,
      '--endpoint',
      endpoint,
      '--tls-server-name',
      '127.0.0.1',
      '--',
      '-Atc',
      'select 1',
    );
    expect(r.code).toBe(1);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain(
      `error: refusing the agent at ${endpoint}: its certificate is not for 127.0.0.1`,
    );
  });

  it('explains what to do when the agent is neither reachable nor port-forwardable', async () => {
    const r = await alice('connect', DB);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `error: the agent of ${NS}/${DB} is not reachable from here, and you may not port-forward to it`,
    );
    expect(r.stderr).toContain('users.portForward=true');
  });

  it('tells a person who has not logged in what to run', async () => {
    const r = await mallory('connect', DB, '--endpoint', endpoint);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(
      `error: not logged in to ${NS}/${DB} (context mallory)\n  run kubectl db login ${DB} -n ${NS} --db-user USER\n`,
    );
  });
});

/** `kubectl db proxy NAME --port 0` as alice; resolves once it prints the port it listens on. */
async function startProxy(name: string): Promise<{ proxy: ChildProcess; port: number }> {
  const proxy = f.spawnKubectlDb(f.kubeconfigs.alice, [
    '-n',
    NS,
    'proxy',
    name,
    '--endpoint',
    f.agentAddress[name as typeof DB],
    '--port',
    '0',
  ]);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    proxy.stdout!.on('data', (d) => {
      out += d;
      const m = /on 127\.0\.0\.1:(\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    proxy.once('exit', (code) => reject(new Error(`kubectl db proxy exited with ${code}`)));
  });
  return { proxy, port };
}

describe('kubectl db proxy', () => {
  let proxy: ChildProcess;
  let port: number;

  beforeAll(async () => {
    ({ proxy, port } = await startProxy(DB));
  });

  afterAll(() => {
    proxy?.kill('SIGINT');
  });

  const local = () => `host=127.0.0.1 port=${port} user=alice dbname=orders`;

  it('serves plaintext psql locally and reaches the agent over TLS as the logged-in person', async () => {
    const r = await psql(local(), [
      '-Atc',
      'select current_user, (select ssl from pg_stat_ssl where pid = pg_backend_pid())',
    ]).result;
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toMatch(/^alice\|[tf]$/);
  });

  it('forwards Ctrl+C: psql cancels a running query through the proxy', async () => {
    const run = psql(local(), ['-c', 'select pg_sleep(30)']);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const active = await f.pg.admin(
        "select count(*) from pg_stat_activity where query = 'select pg_sleep(30)'",
      );
      if (active.trim() === '1') break;
      await new Promise((r) => setTimeout(r, 100));
    }
    run.child.kill('SIGINT');
    const r = await run.result;
    expect(r.stderr).toContain('canceling statement due to user request');
    expect(r.ms).toBeLessThan(10_000);
  });

  it('answers in the PostgreSQL protocol when the login is gone', async () => {
    expectOk(await alice('logout', DB));
    const r = await psql(local(), ['-Atc', 'select 1']).result;
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`kubectl db proxy: not logged in to ${NS}/${DB}`);
    expect(r.stderr).toContain(`HINT:  run kubectl db login ${DB} -n ${NS} --db-user USER`);
  });
});

describe('Redis', () => {
  const redisCli = (args: string[]) =>
    new Promise<RunResult>((resolve) => {
      const child = spawn('redis-cli', args);
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });

  it('logs in and runs redis-cli over TLS as the database user', async () => {
    expectOk(await alice('login', CACHE, '--db-user', 'admin', '--timeout', '60s'));
    const r = await alice('connect', CACHE, '--endpoint', f.agentAddress[CACHE], '--', 'acl', 'whoami');
    expectOk(r);
    expect(r.stdout.trim()).toBe('admin');
  });

  it("refuses another Database's agent at the address before redis-cli sends a command", async () => {
    const decoy = f.agentAddress[DECOY];
    const r = await alice('connect', CACHE, '--endpoint', decoy, '--', 'set', 'impersonated', '1');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `error: refusing the agent at ${decoy}: its certificate is not for ${agentName(CACHE)}.${NS}.svc`,
    );
    expect(r.stderr).toContain('--endpoint');
    // The decoy serves DB 5 of the same server: nothing reached either database.
    expect(await f.redis.cli(['-n', '5', 'exists', 'impersonated'])).toBe('0\n');
    expect(await f.redis.cli(['exists', 'impersonated'])).toBe('0\n');
  });

  it('relays plaintext redis-cli through kubectl db proxy', async () => {
    const { proxy, port } = await startProxy(CACHE);
    try {
      const set = await redisCli([
        '-p',
        String(port),
        '--user',
        'admin',
        '--pass',
        'ignored',
        '--no-auth-warning',
        'set',
        'k',
        'v',
      ]);
      expect(set.stdout.trim()).toBe('OK');
      expect(await f.redis.cli(['get', 'k'], 'admin')).toBe('v\n');
      // Without AUTH the session is Redis's `default` user, which no role allows.
      const anon = await redisCli(['-p', String(port), 'get', 'k']);
      expect(anon.stdout).toMatch(/default/);
    } finally {
      proxy.kill('SIGINT');
    }
  });
});
