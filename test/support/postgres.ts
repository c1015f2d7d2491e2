/**
 * A real PostgreSQL 15 for tests, demos and benches: initdb with SCRAM, TLS with a server certificate
 * from a throwaway CA (src/pki), roles hashed with SCRAM or md5, on a free loopback port.
 *
 * initdb and postgres refuse to run as root, and CI runs as root: both are spawned with the `postgres`
 * OS user's uid/gid, in a temp dir that user owns. The server is our child process, so `stop()` (or
 * process exit) ends it and removes the directory.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type KeyPairPem, createCA, issueCertificate } from '../../src/pki/ca.js';
import { freePort, withFreshPorts } from './ports.js';

export const PG_BIN = process.env.PG_BIN ?? '/usr/lib/postgresql/15/bin';

export interface PgRole {
  name: string;
  /** Omit for a role that logs in with a client certificate only. */
  password?: string;
  /** How the password is stored: scram-sha-256 (default) or md5. */
  hash?: 'scram' | 'md5';
  superuser?: boolean;
}

export interface PostgresOptions {
  /** Address to listen on (default 127.0.0.1); make e2e uses its node's bridge address. */
  host?: string;
  /** Where clients connect from, for pg_hba (default: `host`/32); make e2e's pods use the pod CIDR. */
  clientNetwork?: string;
  roles?: PgRole[];
  /** Databases to create, owned by the first role (or postgres). */
  databases?: string[];
  /** Roles that must log in with a client certificate (pg_hba `cert`); needs `clientCaPem`. */
  certRoles?: string[];
  /** CA whose client certificates the server accepts (ssl_ca_file). */
  clientCaPem?: string;
  /** Roles that log in with a cleartext password (pg_hba `password`), e.g. to test that method. */
  cleartextRoles?: string[];
  maxConnections?: number;
  /** Extra postgresql.conf lines. */
  conf?: string[];
}

export interface PostgresServer {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  /** CA that signed the server certificate (for verify-full clients and the agent's spec.tls). */
  readonly ca: KeyPairPem;
  readonly caFile: string;
  readonly logPath: string;
  readonly superuserPassword: string;
  /** Runs SQL as the superuser over the Unix socket; resolves to psql's unaligned output. */
  admin(sql: string, database?: string): Promise<string>;
  stop(): Promise<void>;
}

// From the directory's creation on (an interrupted initdb leaves one), the server once it runs.
const live = new Set<{ child?: ChildProcess; dir: string }>();
// 'exit' handlers must be synchronous: stop hard and remove the directory.
process.on('exit', () => {
  for (const s of live) s.child?.kill('SIGQUIT');
  for (const s of live) removeNow(s.dir);
});

/**
 * The server (or initdb) deletes its own files as it stops, under our feet: rmSync then fails, or
 * returns with files left (an entry gone mid-walk is an ENOENT that `force` ignores). Try again for ~1 s.
 */
function removeNow(dir: string): void {
  for (let tries = 0; tries < 20 && existsSync(dir); tries++) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Tried again below.
    }
    if (existsSync(dir)) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50); // sleeps
  }
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres']).toString().trim());
  return { uid: id('-u'), gid: id('-g') };
}

function run(cmd: string, args: string[], opts: { user?: { uid: number; gid: number }; env?: object } = {}) {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(cmd, args, {
      ...opts.user,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${path.basename(cmd)} exited ${code}: ${err || out}`)),
    );
  });
}

const quote = (s: string) => `'${s.replace(/'/g, "''")}'`;
const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

/** Starts the server, again on a fresh port if its port was taken before it could bind it (ports.ts). */
export function startPostgres(opts: PostgresOptions = {}): Promise<PostgresServer> {
  return withFreshPorts(() => startPostgresOnce(opts));
}

async function startPostgresOnce(opts: PostgresOptions): Promise<PostgresServer> {
  const user = postgresUser();
  const host = opts.host ?? '127.0.0.1';
  const clients = opts.clientNetwork ?? `${host}/32`;
  // Sync: tracked (below) the moment it exists, so an exit during start removes it too.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'drawbridge-pg-'));
  const entry: { child?: ChildProcess; dir: string } = { dir };
  live.add(entry);
  const data = path.join(dir, 'data');
  const file = (name: string) => path.join(dir, name);
  const own = (p: string) => user && chownSync(p, user.uid, user.gid);
  own(dir);
  chmodSync(dir, 0o700);

  const superuserPassword = `su-${Math.random().toString(36).slice(2)}`;
  await writeFile(file('pwfile'), superuserPassword + '\n', { mode: 0o600 });
  own(file('pwfile'));
  await run(
    path.join(PG_BIN, 'initdb'),
    [
      '-D',
      data,
      '-U',
      'postgres',
      '--auth=scram-sha-256',
      `--pwfile=${file('pwfile')}`,
      '--no-sync',
      '-E',
      'UTF8',
    ],
    { user, env: { LC_ALL: 'C' } },
  );

  const ca = await createCA({ commonName: 'test postgres CA' });
  const server = await issueCertificate(ca, {
    commonName: 'localhost',
    dnsNames: ['localhost'],
    ipAddresses: [host],
    usage: 'server',
  });
  const secretFiles: [string, string][] = [
    ['server.crt', server.certPem],
    ['server.key', server.keyPem],
    ['ca.crt', ca.certPem],
    ...(opts.clientCaPem ? ([['client-ca.crt', opts.clientCaPem]] as [string, string][]) : []),
  ];
  for (const [name, content] of secretFiles) {
    await writeFile(file(name), content, { mode: 0o600 });
    own(file(name));
  }

  const port = await freePort();
  const conf = [
    `listen_addresses = '${host}'`,
    `port = ${port}`,
    `unix_socket_directories = '${dir}'`,
    `max_connections = ${opts.maxConnections ?? 200}`,
    'ssl = on',
    `ssl_cert_file = '${file('server.crt')}'`,
    `ssl_key_file = '${file('server.key')}'`,
    ...(opts.clientCaPem ? [`ssl_ca_file = '${file('client-ca.crt')}'`] : []),
    // A throwaway server: durability off, so tests spend their time on the protocol.
    'fsync = off',
    'synchronous_commit = off',
    'full_page_writes = off',
    ...(opts.conf ?? []),
  ];
  await writeFile(path.join(data, 'postgresql.auto.conf'), conf.join('\n') + '\n');
  // `md5` in pg_hba means: SCRAM for roles stored as SCRAM, md5 for roles stored as md5.
  const hba = [
    'local all postgres trust',
    ...(opts.certRoles ?? []).map((r) => `hostssl all ${ident(r)} ${clients} cert`),
    ...(opts.cleartextRoles ?? []).map((r) => `host all ${ident(r)} ${clients} password`),
    `host all all ${clients} md5`,
  ];
  await writeFile(path.join(data, 'pg_hba.conf'), hba.join('\n') + '\n');
  own(path.join(data, 'postgresql.auto.conf'));
  own(path.join(data, 'pg_hba.conf'));

  const logPath = file('postgres.log');
  const logFd = openSync(logPath, 'a');
  const child = spawn(path.join(PG_BIN, 'postgres'), ['-D', data], {
    ...user,
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  entry.child = child;
  let exited = false;
  child.once('exit', () => (exited = true));

  const admin = (sql: string, database = 'postgres') =>
    run(path.join(PG_BIN, 'psql'), [
      '-h',
      dir,
      '-p',
      String(port),
      '-U',
      'postgres',
      '-d',
      database,
      '-X',
      '-A',
      '-t',
      '-q',
      '-v',
      'ON_ERROR_STOP=1',
      '-c',
      sql,
    ]);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    if (!exited) {
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGINT'); // fast shutdown: ends sessions, no checkpoint wait for clients
      await Promise.race([done, sleep(10_000)]);
      if (!exited) child.kill('SIGKILL');
    }
    removeNow(dir);
    // Only now: a process that exits while this waits still removes the directory on its way out.
    live.delete(entry);
  };

  try {
    await waitReady(dir, port, () => exited, logPath);
    for (const role of opts.roles ?? []) {
      const hash = role.hash === 'md5' ? 'md5' : 'scram-sha-256';
      const pw = role.password === undefined ? '' : ` PASSWORD ${quote(role.password)}`;
      const su = role.superuser ? ' SUPERUSER' : '';
      await admin(`SET password_encryption = '${hash}'; CREATE ROLE ${ident(role.name)} LOGIN${su}${pw}`);
    }
    const owner = opts.roles?.[0]?.name ?? 'postgres';
    for (const db of opts.databases ?? []) await admin(`CREATE DATABASE ${ident(db)} OWNER ${ident(owner)}`);
  } catch (err) {
    await stop();
    throw err;
  }
  return { host, port, dir, ca, caFile: file('ca.crt'), logPath, superuserPassword, admin, stop };
}

async function waitReady(dir: string, port: number, exited: () => boolean, logPath: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (exited()) throw new Error(`postgres exited during startup:\n${readFileSync(logPath, 'utf8')}`);
    try {
      await run(path.join(PG_BIN, 'pg_isready'), ['-h', dir, '-p', String(port), '-U', 'postgres', '-q']);
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`postgres did not become ready within 60 s:\n${readFileSync(logPath, 'utf8')}`);
}
