// Shared set-up for the PostgreSQL integration suites: a real PostgreSQL 15 (SCRAM + md5 roles, TLS),
// a client CA with certificates for the test people, the agent's documents, and psql / pg clients
// pointed at the agent.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { type KeyPairPem, createCA, issueCertificate } from '../../../src/pki/ca.js';
import { type AgentTls, type TestAgent, startTestAgent } from '../../support/agent.js';
import { type WorkersAgent, startWorkersAgent } from '../../support/agent-workers.js';
import { PG_BIN, type PostgresServer, startPostgres } from '../../support/postgres.js';

export const PASSWORDS = { alice: 'alice-scram-pw', bob: 'bob-md5-pw', carol: 'carol-pw' } as const;

export interface Person {
  name: string;
  certFile: string;
  keyFile: string;
  certPem: string;
  keyPem: string;
}

export interface Fixture {
  pg: PostgresServer;
  agent: TestAgent;
  dir: string;
  /** CA of the agent's serving certificate and of client certificates. */
  ca: KeyPairPem;
  caFile: string;
  people: Record<'alice' | 'dave' | 'mallory', Person>;
  /** The agent's TLS material, to start more agents in front of the same server. */
  agentTls: AgentTls;
  stop(): Promise<void>;
}

/** The documents the agent starts with; tests rewrite them to exercise reload. */
export function baseDocs(
  pgPort: number,
  pgCaPem: string,
  overrides: { roles?: object[]; users?: object[] } = {},
) {
  return [
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'orders-pg', labels: { env: 'prod', team: 'orders' } },
      spec: {
        protocol: 'postgres',
        uri: `postgres://127.0.0.1:${pgPort}`,
        tls: { mode: 'verify-full', caSecretRef: { name: 'pg-ca', key: 'ca.crt' } },
        auth: { type: 'password', secretRef: { name: 'pg-passwords' } },
      },
    },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pg-ca' }, stringData: { 'ca.crt': pgCaPem } },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pg-passwords' }, stringData: { ...PASSWORDS } },
    ...(overrides.roles ?? [
      role('dev', {
        databaseLabels: { env: '*' },
        databaseUsers: ['{{traits.dbUsers}}'],
        databaseNames: ['{{traits.dbNames}}'],
      }),
      role('no-secrets', { databaseLabels: { env: '*' } }, { databaseNames: ['secrets'] }),
      role('not-prod', { databaseLabels: { env: 'staging' }, databaseUsers: ['*'], databaseNames: ['*'] }),
    ]),
    ...(overrides.users ?? [
      user('alice', ['dev'], { dbUsers: ['alice', 'bob'], dbNames: ['orders', 'secrets', 'nosuchdb'] }),
      user('dave', ['dev', 'no-secrets'], { dbUsers: ['alice'], dbNames: ['*'] }),
      user('mallory', ['not-prod'], {}),
    ]),
  ];
}

export function role(name: string, allow: object, deny: object = {}, maxSessionTTL = '8h') {
  return {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'AccessRole',
    metadata: { name },
    spec: { allow, deny, options: { maxSessionTTL } },
  };
}

export function user(name: string, roles: string[], traits: object) {
  return {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'DatabaseUser',
    metadata: { name },
    spec: { subjects: [{ kind: 'User', name }], roles, traits },
  };
}

export async function startFixture(pgOpts: Parameters<typeof startPostgres>[0] = {}): Promise<Fixture> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-pgtest-'));
  const ca = await createCA({ commonName: 'drawbridge test CA' });
  const caFile = path.join(dir, 'ca.crt');
  await writeFile(caFile, ca.certPem);
  const person = async (name: string, groups: string[] = []): Promise<Person> => {
    const cert = await issueCertificate(ca, { commonName: name, organizations: groups, usage: 'client' });
    const certFile = path.join(dir, `${name}.crt`);
    const keyFile = path.join(dir, `${name}.key`);
    await writeFile(certFile, cert.certPem);
    await writeFile(keyFile, cert.keyPem, { mode: 0o600 });
    return { name, certFile, keyFile, ...cert };
  };
  const people = {
    alice: await person('alice'),
    dave: await person('dave'),
    mallory: await person('mallory'),
  };
  const pgServer = await startPostgres({
    databases: ['orders', 'secrets'],
    ...pgOpts,
    roles: [
      { name: 'alice', password: PASSWORDS.alice },
      { name: 'bob', password: PASSWORDS.bob, hash: 'md5' },
      { name: 'carol', password: PASSWORDS.carol },
      ...(pgOpts.roles ?? []),
    ],
  });
  const serving = await issueCertificate(ca, {
    commonName: 'orders-pg agent',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  const agentTls = { certPem: serving.certPem, keyPem: serving.keyPem, clientCaPem: ca.certPem };
  let agent: TestAgent;
  try {
    agent = await startTestAgent({
      database: 'orders-pg',
      docs: baseDocs(pgServer.port, pgServer.ca.certPem),
      tls: agentTls,
    });
  } catch (err) {
    await pgServer.stop();
    throw err;
  }
  return {
    pg: pgServer,
    agent,
    dir,
    ca,
    caFile,
    people,
    agentTls,
    async stop() {
      await agent.stop();
      await pgServer.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The fixture's documents behind an agent of `workers` processes, run as the CLI runs it. */
export function startWorkersAgentFor(f: Fixture, workers = 2, node?: string): Promise<WorkersAgent> {
  const docs = baseDocs(f.pg.port, f.pg.ca.certPem);
  return startWorkersAgent({ database: 'orders-pg', docs, tls: f.agentTls, workers, node });
}

/** libpq connection string to the agent as `who`. */
export function agentConninfo(
  f: Fixture,
  who: Person | undefined,
  dbUser: string,
  dbName: string,
  extra = '',
) {
  const cert = who
    ? ` sslcert=${who.certFile} sslkey=${who.keyFile}`
    : ' sslcert=/nonexistent sslkey=/nonexistent';
  return (
    `host=127.0.0.1 port=${f.agent.port} user=${dbUser} dbname=${dbName} sslmode=verify-full ` +
    `sslrootcert=${f.caFile}${cert} connect_timeout=10 ${extra}`
  );
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Starts a client binary asynchronously (the agent runs in this process: never block it). */
export function spawnClient(
  bin: string,
  args: string[],
  input?: string,
): { child: ChildProcess; result: Promise<RunResult> } {
  const started = Date.now();
  const child = spawn(path.join(PG_BIN, bin), args, {
    env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  child.stdin!.end(input ?? '');
  const result = new Promise<RunResult>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }));
  });
  return { child, result };
}

export function runClient(bin: string, args: string[], input?: string): Promise<RunResult> {
  return spawnClient(bin, args, input).result;
}

export function psql(conninfo: string, sql: string, input?: string): Promise<RunResult> {
  return runClient('psql', [conninfo, '-X', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-c', sql], input);
}

/** A node-postgres client to the agent. */
export function pgClient(f: Fixture, who: Person, dbUser: string, database: string): pg.Client {
  return new pg.Client({
    host: '127.0.0.1',
    port: f.agent.port,
    user: dbUser,
    database,
    ssl: { ca: f.ca.certPem, cert: who.certPem, key: who.keyPem, servername: 'localhost' },
  });
}
