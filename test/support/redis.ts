// A real standalone Redis 7 for tests and benches: TLS on one loopback port (certificate from a
// throwaway CA, client certificates accepted but not required), plaintext on another (for nutcracker,
// which speaks no TLS, and for direct baselines), ACL users with distinct rights, no persistence.
// Started asynchronously (the agent under test runs in this same process) and always torn down.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type ConnectionOptions, type TLSSocket, connect as tlsConnect } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis, type RedisOptions } from 'ioredis';
import { RESP_TYPES, type RedisClientOptions, createClient } from 'redis';
import { type KeyPairPem, createCA, issueCertificate } from '../../src/pki/ca.js';
import { freePort, withFreshPorts } from './ports.js';
import { terminate } from './terminate.js';

const HOST = '127.0.0.1';

/** ACL users of the test server; the agent's password Secret holds the same passwords. */
export const REDIS_USERS = {
  default: { password: 'default-pw', rules: '~* &* +@all' },
  admin: { password: 'admin-pw', rules: '~* &* +@all' },
  app: { password: 'app-pw', rules: '~* &* +@all -@dangerous' },
  reader: { password: 'reader-pw', rules: '~* &* -@all +@read +@connection +info' },
} as const;
export type RedisUserName = keyof typeof REDIS_USERS;

export interface RedisServer {
  readonly host: string;
  readonly tlsPort: number;
  readonly plainPort: number;
  readonly dir: string;
  /** CA of the server certificate; tests issue backend client certificates (mtls) from it. */
  readonly ca: KeyPairPem;
  readonly caFile: string;
  /** Runs redis-cli against the TLS port as `user`; resolves to stdout. */
  cli(args: string[], user?: RedisUserName): Promise<string>;
  stop(): Promise<void>;
}

// Servers and their directories, from the directory's creation on: removed on exit, even mid-start.
const running = new Map<string, ChildProcess | undefined>();
process.on('exit', () =>
  running.forEach((child, dir) => {
    child?.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }),
);

/** Starts the server, again on fresh ports if one was taken before it could bind it (ports.ts). */
export function startRedis(): Promise<RedisServer> {
  return withFreshPorts(startRedisOnce);
}

async function startRedisOnce(): Promise<RedisServer> {
  // Sync: tracked (below) the moment it exists, so an exit during start removes it too.
  const dir = mkdtempSync(path.join(os.tmpdir(), 'drawbridge-redis-'));
  running.set(dir, undefined);
  const file = (name: string) => path.join(dir, name);
  const ca = await createCA({ commonName: 'drawbridge test redis CA' });
  const cert = await issueCertificate(ca, {
    commonName: 'redis',
    dnsNames: ['localhost'],
    ipAddresses: [HOST],
    usage: 'server',
  });
  await writeFile(file('ca.crt'), ca.certPem);
  await writeFile(file('redis.crt'), cert.certPem);
  await writeFile(file('redis.key'), cert.keyPem, { mode: 0o600 });
  const [tlsPort, plainPort] = [await freePort(), await freePort()];
  const users = Object.entries(REDIS_USERS).map(([n, u]) => `user ${n} on >${u.password} ${u.rules}`);
  await writeFile(
    file('redis.conf'),
    [
      `bind ${HOST}`,
      `port ${plainPort}`,
      `tls-port ${tlsPort}`,
      `tls-cert-file ${file('redis.crt')}`,
      `tls-key-file ${file('redis.key')}`,
      `tls-ca-cert-file ${file('ca.crt')}`,
      'tls-auth-clients optional',
      `dir ${dir}`,
      `logfile ${file('redis.log')}`,
      'save ""',
      'appendonly no',
      'maxclients 2000',
      ...users,
    ].join('\n') + '\n',
  );
  const child = spawn('redis-server', [file('redis.conf')], { stdio: 'ignore' });
  running.set(dir, child);
  // A watchdog kills the server if this process dies without running exit handlers (worker killed).
  const watchdog = spawn(
    'sh',
    [
      '-c',
      'while kill -0 $0 2>/dev/null; do sleep 1; done; kill -9 $1 2>/dev/null',
      String(process.pid),
      String(child.pid),
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();
  let exited = false;
  child.once('exit', () => (exited = true));

  const cli = (args: string[], user: RedisUserName = 'admin') =>
    exec('redis-cli', [
      '--tls',
      '--cacert',
      file('ca.crt'),
      '-h',
      HOST,
      '-p',
      String(tlsPort),
      '--user',
      user,
      '--pass',
      REDIS_USERS[user].password,
      '--no-auth-warning',
      ...args,
    ]);
  const stop = async () => {
    await terminate({ child, exited }, 5000);
    watchdog.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    running.delete(dir);
  };

  const deadline = Date.now() + 20_000;
  for (;;) {
    if (exited || Date.now() > deadline) {
      const log = await readFile(file('redis.log'), 'utf8').catch(() => '(no log)');
      await stop();
      throw new Error(`redis-server did not start on ${tlsPort}:\n${log.split('\n').slice(-20).join('\n')}`);
    }
    if ((await cli(['PING']).catch(() => '')).trim() === 'PONG') break;
    await sleep(100);
  }
  return { host: HOST, tlsPort, plainPort, dir, ca, caFile: file('ca.crt'), cli, stop };
}

/** Runs a command; resolves to stdout, rejects with stderr on a non-zero exit. */
export function exec(cmd: string, args: string[], input?: Buffer | string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.once('error', reject);
    child.once('close', (code) => {
      const stdout = Buffer.concat(out).toString('utf8');
      if (code === 0) resolve(stdout);
      else reject(new Error(`${cmd} exited ${code}: ${Buffer.concat(err).toString('utf8')}${stdout}`));
    });
    child.stdin.end(input);
  });
}

const API = 'drawbridge.dev/v1alpha1';

export interface RedisDatabaseDocs {
  name: string;
  uri: string;
  labels: Record<string, string>;
  /** CA of the server certificate; without it the agent talks plaintext to the backend. */
  caPem?: string;
  auth: 'password' | 'mtls' | 'passthrough';
  /** The login Secret: user → password (password), or tls.crt/tls.key (mtls). */
  login?: Record<string, string>;
}

/** The Database document an agent fronts, with its CA and login Secrets. */
export function redisDatabaseDocs(d: RedisDatabaseDocs): object[] {
  const secret = (name: string, stringData: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name },
    stringData,
  });
  const login = d.auth === 'passthrough' ? undefined : `${d.name}-login`;
  return [
    {
      apiVersion: API,
      kind: 'Database',
      metadata: { name: d.name, labels: d.labels },
      spec: {
        protocol: 'redis',
        uri: d.uri,
        tls: d.caPem
          ? { mode: 'verify-full', caSecretRef: { name: `${d.name}-ca`, key: 'ca.crt' } }
          : { mode: 'disabled' },
        auth: { type: d.auth, ...(login ? { secretRef: { name: login } } : {}) },
      },
    },
    ...(d.caPem ? [secret(`${d.name}-ca`, { 'ca.crt': d.caPem })] : []),
    ...(login ? [secret(login, d.login ?? {})] : []),
  ];
}

export function accessRole(name: string, allow: object, deny: object = {}): object {
  return { apiVersion: API, kind: 'AccessRole', metadata: { name }, spec: { allow, deny } };
}

export function databaseUser(name: string, roles: string[]): object {
  return {
    apiVersion: API,
    kind: 'DatabaseUser',
    metadata: { name },
    spec: { subjects: [{ kind: 'User', name }], roles },
  };
}

/**
 * The test people's access, for any database: alice logs in as default or app, anything but @dangerous;
 * rita as reader, @read and @connection only; ops as anyone, everything.
 */
export function peoplePolicy(): object[] {
  const labels = { databaseLabels: { env: '*' } };
  return [
    accessRole(
      'developer',
      { ...labels, databaseUsers: ['default', 'app'] },
      { redisCommands: ['@dangerous'] },
    ),
    accessRole('readonly', { ...labels, databaseUsers: ['reader'], redisCommands: ['@read', '@connection'] }),
    accessRole('admin', { ...labels, databaseUsers: ['*'] }),
    databaseUser('alice', ['developer']),
    databaseUser('rita', ['readonly']),
    databaseUser('ops', ['admin']),
  ];
}

export interface Person {
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
}

/** Client certificates (CN = the person's name) from `ca`, written to `dir`. */
export async function issuePeople<N extends string>(
  ca: KeyPairPem,
  dir: string,
  names: readonly N[],
): Promise<Record<N, Person>> {
  const people = {} as Record<N, Person>;
  for (const name of names) {
    const cert = await issueCertificate(ca, { commonName: name, usage: 'client' });
    const certFile = path.join(dir, `${name}.crt`);
    const keyFile = path.join(dir, `${name}.key`);
    await writeFile(certFile, cert.certPem);
    await writeFile(keyFile, cert.keyPem, { mode: 0o600 });
    people[name] = { certFile, keyFile, ...cert };
  }
  return people;
}

/** A fixture's certificates: people's client certificates and the agent's serving one, from one test CA. */
export interface PeopleTls<N extends string> {
  /** Temporary folder holding the CA and the people's certificate files; the fixture removes it. */
  dir: string;
  ca: KeyPairPem;
  caFile: string;
  people: Record<N, Person>;
  /** The agent's serving certificate (127.0.0.1) and the client CA it trusts. */
  agentTls: { certPem: string; keyPem: string; clientCaPem: string };
  /** TLS options of a client connecting as `person`. */
  tls(person: N): { ca: string; cert: string; key: string };
  /** `--tls --cacert … --cert … --key …` for redis-cli / redis-benchmark as `person`. */
  tlsArgs(person: N): string[];
}

export async function issuePeopleTls<N extends string>(
  names: readonly N[],
  agentName: string,
  dirPrefix: string,
): Promise<PeopleTls<N>> {
  const dir = await mkdtemp(path.join(os.tmpdir(), dirPrefix));
  const ca = await createCA({ commonName: 'drawbridge test client CA' });
  const caFile = path.join(dir, 'ca.crt');
  await writeFile(caFile, ca.certPem);
  const people = await issuePeople(ca, dir, names);
  const serving = await issueCertificate(ca, {
    commonName: agentName,
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  return {
    dir,
    ca,
    caFile,
    people,
    agentTls: { certPem: serving.certPem, keyPem: serving.keyPem, clientCaPem: ca.certPem },
    tls: (p) => ({ ca: ca.certPem, cert: people[p].certPem, key: people[p].keyPem }),
    tlsArgs: (p) => ['--tls', '--cacert', caFile, '--cert', people[p].certFile, '--key', people[p].keyFile],
  };
}

/** A raw TLS connection to an agent on 127.0.0.1:`port` (for exact bytes: pipelines, malformed input). */
export function rawTls(
  port: number,
  tls: Pick<ConnectionOptions, 'ca' | 'cert' | 'key'>,
): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ...tls }, () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * A connected node-redis v5 client speaking RESP3 through the agent on 127.0.0.1:`port` as the holder
 * of `tls`, without reconnects; its destroy goes to `closers` for the suite's teardown.
 */
export async function nodeRedisAt(
  port: number,
  tls: Pick<ConnectionOptions, 'ca' | 'cert' | 'key'>,
  closers: (() => unknown)[],
  opts: Partial<RedisClientOptions> = {},
) {
  const client = createClient({
    RESP: 3,
    socket: { host: HOST, port, tls: true, ...tls, reconnectStrategy: false },
    ...opts,
  });
  client.on('error', () => undefined);
  closers.push(() => client.destroy());
  await client.connect();
  return client;
}

/** node-redis options decoding maps and sets as such, so a test sees which RESP3 type arrived. */
export const TYPED = { typeMapping: { [RESP_TYPES.MAP]: Map, [RESP_TYPES.SET]: Set } };

/** What tests choose of an ioredis client: the AUTH it sends, and its protocol (ioredis 6 says HELLO 3 unless told 2). */
export type IoredisOptions = Pick<RedisOptions, 'username' | 'password' | 'protocol' | 'replyMapping'>;

/**
 * A plain (non-cluster) ioredis client through the agent on `port`, as the holder of `tls`: no retries
 * or reconnects, so a refused command or a dropped session fails the test at once instead of hanging;
 * the caller keeps it in `clients` to disconnect on stop.
 */
export function ioredisAt(
  port: number,
  tls: Pick<ConnectionOptions, 'ca' | 'cert' | 'key'>,
  clients: Set<Redis>,
  opts: IoredisOptions = {},
): Redis {
  const client = new Redis({
    host: '127.0.0.1',
    port,
    tls,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    ...opts,
  });
  client.on('error', () => undefined);
  clients.add(client);
  return client;
}
