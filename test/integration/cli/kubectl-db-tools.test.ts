/**
 * `kubectl db` for platform use, end to end through real kubectl, API server, controller, agent and
 * PostgreSQL: `ls -o json|yaml -l`, `version`, completion through `kubectl __complete db` (kubectl
 * runs kubectl_complete-db), `env` and `config` settings that psql can use, `connect --client` with
 * another command, and the proxy's fixed default port.
 */
import { spawn } from 'node:child_process';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultProxyPort } from '../../../src/cli/db/proxy.js';
import { PG_BIN } from '../../support/postgres.js';
import { CACHE, type CliFixture, DB, DECOY, NS, type RunResult, startCliFixture } from './fixture.js';

let f: CliFixture;

beforeAll(async () => {
  f = await startCliFixture();
  const r = await alice('login', DB, '--db-user', 'alice', '--ttl', '30m', '--timeout', '60s');
  expect(r.code, r.stderr).toBe(0);
});

afterAll(async () => {
  await f?.stop();
});

const alice = (...args: string[]) => f.kubectlDb(f.kubeconfigs.alice, ['-n', NS, ...args]);

function ok(r: RunResult): string {
  expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
  expect(r.code).toBe(0);
  return r.stdout;
}

describe('kubectl db ls', () => {
  it('-o json lists what the table shows, with the login', async () => {
    const { items } = JSON.parse(ok(await alice('ls', '-o', 'json'))) as { items: Record<string, unknown>[] };
    const orders = items.find((i) => i.name === DB);
    expect(orders).toMatchObject({
      namespace: NS,
      protocol: 'postgres',
      dbUsers: ['alice'],
      dbNames: ['orders'],
    });
    expect(orders!.login).toMatchObject({ dbUser: 'alice', expired: false });
  });

  it('-l filters by label on the API server, -o yaml', async () => {
    const all = (JSON.parse(ok(await alice('ls', '-o', 'json'))) as { items: { name: string }[] }).items;
    expect(all.length).toBeGreaterThan(1);
    const { items } = parse(ok(await alice('ls', '-o', 'yaml', '-l', 'env=prod,team in (orders)'))) as {
      items: { name: string; labels: Record<string, string> }[];
    };
    expect(items.map((i) => i.name)).toEqual([DB]);
    const none = await alice('ls', '-o', 'json', '-l', 'no-such-label=1');
    expect(JSON.parse(ok(none))).toEqual({ items: [] });
  });

  it('refuses an unknown output format with the ones it knows', async () => {
    const r = await alice('ls', '-o', 'wide');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('must be one of table, json, yaml');
  });
});

describe('packaging', () => {
  it('npm pack ships the compiled CLI, its two bins and nothing of the tests', async () => {
    const r = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {});
    const [pack] = JSON.parse(r.stdout) as { files: { path: string }[] }[];
    const files = pack!.files.map((x) => x.path);
    expect(files).toEqual(
      expect.arrayContaining([
        'dist/src/cli/kubectl-db.js',
        'dist/src/cli/kubectl-complete-db.js',
        'package.json',
      ]),
    );
    expect(files.filter((x) => x.startsWith('test/') || x.startsWith('src/') || x.endsWith('.ts'))).toEqual(
      [],
    );
  });
});

describe('version and completion', () => {
  it('version prints the package version', async () => {
    expect(ok(await alice('version'))).toMatch(/^kubectl-db 0\.1\.0 \(Node\.js v[\d.]+\)$/m);
  });

  it('kubectl completes subcommands, flags and Database names through kubectl_complete-db', async () => {
    const complete = async (...words: string[]) =>
      ok(await f.kubectl(f.kubeconfigs.alice, ['__complete', 'db', ...words]))
        .trim()
        .split('\n');
    expect(await complete('co')).toEqual(['config', 'connect', ':4']);
    expect(await complete('-n', NS, 'connect', '')).toEqual([...[CACHE, DECOY, DB].sort(), ':4']);
    expect(await complete('-n', NS, 'proxy', 'ord')).toEqual([DB, ':4']);
    expect(await complete('ls', '--out')).toEqual(['--output', ':4']);
  });
});

describe('settings for other clients', () => {
  it('env --direct: psql connects with nothing but the printed variables', async () => {
    const lines = ok(await alice('env', DB, '--direct'))
      .trim()
      .split('\n');
    expect(lines[0]).toMatch(/^# shop\/orders-pg straight to its agent, as alice/);
    const env: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const m = /^export (\w+)='(.*)'$/.exec(l)!;
      env[m[1]!] = m[2]!;
    }
    expect(env).toMatchObject({ PGUSER: 'alice', PGDATABASE: 'orders', PGSSLMODE: 'verify-full' });
    expect(env.PGHOST).toBe(`drawbridge-${DB}.${NS}.svc`);
    // This machine is not in the cluster network: DNS for the Service name is what PGHOSTADDR stands in for
    // (libpq still checks the agent's certificate against PGHOST).
    const [addr, port] = f.agentAddress[DB].split(':');
    Object.assign(env, { PGHOSTADDR: addr!, PGPORT: port! });
    const r = await run(`${PG_BIN}/psql`, ['-XAtc', 'select current_user, current_database()'], env);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('alice|orders');
  });

  it('config -o json gives the proxy address on the fixed port and the direct TLS settings', async () => {
    const s = JSON.parse(ok(await alice('config', DB, '-o', 'json')));
    expect(s).toMatchObject({
      namespace: NS,
      name: DB,
      protocol: 'postgres',
      user: 'alice',
      database: 'orders',
      proxy: { host: '127.0.0.1', port: defaultProxyPort('postgres', NS, DB) },
      direct: {
        sslmode: 'verify-full',
        url: expect.stringMatching(/^postgres:\/\/alice@.*sslmode=verify-full/),
      },
    });
    expect(defaultProxyPort('postgres', NS, DB)).toBe(defaultProxyPort('postgres', NS, DB));
    expect(defaultProxyPort('postgres', NS, DB)).not.toBe(defaultProxyPort('postgres', NS, 'other'));
  });

  it('connect --client runs any command against the name-checked relay, with PG* and DATABASE_URL', async () => {
    const r = await alice(
      'connect',
      DB,
      '--endpoint',
      f.agentAddress[DB],
      '--client',
      'sh',
      '--',
      '-c',
      `"${PG_BIN}/psql" -XAtc 'select current_user, current_database()' && "${PG_BIN}/psql" -XAtc 'select 2' "$DATABASE_URL"`,
    );
    expect(ok(r).trim().split('\n')).toEqual(['alice|orders', '2']);
  });
});

function run(bin: string, args: string[], env: Record<string, string>): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(bin, args, { env: { ...process.env, ...env, PGCONNECT_TIMEOUT: '10' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
