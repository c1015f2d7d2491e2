// Who may connect, and how the agent logs in to the backend: real psql through the agent to a real
// PostgreSQL 15. Allowed and denied by each kind of rule, SCRAM, md5 and certificate backend logins,
// verify-full TLS to the backend, and the errors a person sees when something is wrong.
import { writeFile } from 'node:fs/promises';
import { type AddressInfo, connect, createServer } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type KeyPairPem, createCA, issueCertificate } from '../../../src/pki/ca.js';
import { backendTarget, loginBackend } from '../../../src/engines/postgres/backend.js';
import { SpareBackend } from '../../../src/engines/postgres/spare.js';
import { type TestAgent, startTestAgent } from '../../support/agent.js';
import { type Fixture, PASSWORDS, agentConninfo, psql, role, startFixture, user } from './fixture.js';

let f: Fixture;
let backendClientCa: KeyPairPem;

beforeAll(async () => {
  backendClientCa = await createCA({ commonName: 'database client CA' });
  f = await startFixture({
    roles: [{ name: 'certuser' }, { name: 'plain', password: 'plain-pw' }],
    certRoles: ['certuser'],
    cleartextRoles: ['plain'],
    clientCaPem: backendClientCa.certPem,
  });
});
afterAll(async () => {
  await f?.stop();
});

const ALLOWED_SQL = "select current_user || '@' || current_database()";

describe('allowed', () => {
  it('logs alice in with SCRAM-SHA-256, over verify-full TLS to the backend', async () => {
    const r = await psql(
      agentConninfo(f, f.people.alice, 'alice', 'orders'),
      "select current_user || '@' || current_database() || ' ssl=' || (select ssl from pg_stat_ssl where pid = pg_backend_pid())",
    );
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('alice@orders ssl=true');
  });

  it('logs in to an md5 role (bob), database defaulting to nothing else than asked', async () => {
    const r = await psql(agentConninfo(f, f.people.alice, 'bob', 'orders'), ALLOWED_SQL);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('bob@orders');
  });

  it('lets dave in where his deny rule does not match', async () => {
    const r = await psql(agentConninfo(f, f.people.dave, 'alice', 'orders'), ALLOWED_SQL);
    expect(r.stdout.trim()).toBe('alice@orders');
  });
});

describe('denied, with the rule that denied it', () => {
  const denied = async (who: keyof Fixture['people'], dbUser: string, dbName: string) => {
    const r = await psql(agentConninfo(f, f.people[who], dbUser, dbName), 'select 1');
    expect(r.code).not.toBe(0);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('FATAL');
    expect(r.stderr).toContain('orders-pg');
    return r.stderr;
  };

  it('by database user', async () => {
    const err = await denied('alice', 'carol', 'orders');
    expect(err).toContain('database user "carol" is not in allow.databaseUsers');
    expect(err).toContain('role "dev"');
  });

  it('by database name', async () => {
    const err = await denied('alice', 'alice', 'postgres');
    expect(err).toContain('database name "postgres" is not in allow.databaseNames');
  });

  it('by database labels', async () => {
    const err = await denied('mallory', 'alice', 'orders');
    expect(err).toContain('role "not-prod"');
    expect(err).toMatch(/env/);
  });

  it('by a deny rule, even when another role allows (deny wins)', async () => {
    const err = await denied('dave', 'alice', 'secrets');
    expect(err).toContain('denied by role "no-secrets"');
    expect(err).toContain('deny.databaseNames');
  });

  it('is written to the audit log with the reason', async () => {
    await denied('alice', 'carol', 'orders');
    await new Promise((r) => setTimeout(r, 200));
    const events = (await f.agent.auditEvents()).filter((e) => e.type === 'session.denied');
    expect(events).toContainEqual(
      expect.objectContaining({
        user: 'alice',
        dbUser: 'carol',
        dbName: 'orders',
        reason: expect.stringContaining('database user "carol" is not in allow.databaseUsers'),
      }),
    );
  });

  it('without a client certificate (standalone agents take certificates only)', async () => {
    const r = await psql(agentConninfo(f, undefined, 'alice', 'orders'), 'select 1');
    expect(r.stderr).toContain('no client certificate was presented');
    expect(r.stderr).toContain('kubectl db login');
  });

  it('with a certificate from another CA', async () => {
    const other = await createCA({ commonName: 'rogue CA' });
    const cert = await issueCertificate(other, { commonName: 'alice', usage: 'client' });
    const person = {
      name: 'rogue-alice',
      certFile: path.join(f.dir, 'rogue.crt'),
      keyFile: path.join(f.dir, 'rogue.key'),
      ...cert,
    };
    await writeFile(person.certFile, cert.certPem);
    await writeFile(person.keyFile, cert.keyPem, { mode: 0o600 });
    const r = await psql(agentConninfo(f, person, 'alice', 'orders'), 'select 1');
    expect(r.stderr).toContain('client certificate rejected');
    expect(r.stdout).toBe('');
  });

  it('in plaintext, with a hint to use TLS', async () => {
    const r = await psql(
      `host=127.0.0.1 port=${f.agent.port} user=alice dbname=orders sslmode=disable`,
      'select 1',
    );
    expect(r.stderr).toContain('accepts TLS connections only');
    expect(r.stderr).toContain('sslmode=require');
  });
});

describe('backend errors reach the client', () => {
  it("passes on the backend's own FATAL (database does not exist)", async () => {
    const r = await psql(agentConninfo(f, f.people.alice, 'alice', 'nosuchdb'), 'select 1');
    expect(r.stderr).toContain('database "nosuchdb" does not exist');
  });

  it('tries fallback passwords when the current one is rejected (rotation)', async () => {
    const database = f.agent.running.agent.state.database;
    const target = backendTarget(database, f.agent.running.agent.state);
    const login = (password: string, fallbackPasswords: string[]) =>
      loginBackend({
        target,
        credential: { kind: 'password', user: 'alice', password, fallbackPasswords },
        params: [
          ['user', 'alice'],
          ['database', 'orders'],
        ],
        secretName: 'pg-passwords',
      });
    const wire = await login('rotated-away', ['also-old', PASSWORDS.alice]);
    wire.socket.destroy();
    const err = await login('rotated-away', ['also-old']).catch((e: Error) => e);
    expect(err).toMatchObject({ code: 'BACKEND_AUTH_FAILED', sqlState: '28P01' });
    expect((err as Error).message).toContain('password authentication failed for user "alice"');
    expect((err as Error).message).not.toContain('rotated-away');
  });

  it('logs in on a fresh connection when the spare one was closed by the server meanwhile', async () => {
    // A "database" that hangs up as soon as it hears the startup packet, as a server whose
    // authentication_timeout expired would: the spare is opened to it.
    let startups = 0;
    const hangUp = createServer((s) => s.once('data', () => (startups++, s.destroy())));
    await new Promise<void>((resolve) => hangUp.listen(0, '127.0.0.1', resolve));
    const { port } = hangUp.address() as AddressInfo;
    let opened!: () => void;
    const ready = new Promise<void>((resolve) => (opened = resolve));
    const spare = new SpareBackend(() => {
      const socket = connect(port, '127.0.0.1');
      return new Promise((resolve) => socket.once('connect', () => (resolve(socket), opened())));
    });
    try {
      const target = backendTarget(f.agent.running.agent.state.database, f.agent.running.agent.state);
      spare.take(target);
      await ready;
      await new Promise(setImmediate);
      const wire = await loginBackend({
        target,
        credential: { kind: 'password', user: 'alice', password: PASSWORDS.alice },
        params: [
          ['user', 'alice'],
          ['database', 'orders'],
        ],
        secretName: 'pg-passwords',
        spare,
      });
      expect(startups).toBe(1);
      expect(wire.socket.remotePort).toBe(f.pg.port);
      wire.socket.destroy();
    } finally {
      spare.close();
      hangUp.close();
    }
  });
});

describe('backend TLS and certificate login', () => {
  let extra: TestAgent | undefined;
  afterAll(async () => {
    await extra?.stop();
  });

  const agentWith = async (database: object, secrets: object[]) => {
    await extra?.stop();
    extra = await startTestAgent({
      database: 'other-pg',
      tls: f.agentTls,
      docs: [
        database,
        ...secrets,
        role('any', { databaseLabels: { '*': '*' }, databaseUsers: ['*'], databaseNames: ['*'] }),
        user('alice', ['any'], {}),
      ],
    });
    return extra;
  };
  const db = (spec: object) => ({
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'Database',
    metadata: { name: 'other-pg' },
    spec: { protocol: 'postgres', uri: `postgres://127.0.0.1:${f.pg.port}`, ...spec },
  });
  const secret = (name: string, stringData: object) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name },
    stringData,
  });
  const via = (a: TestAgent, dbUser: string, sql: string) =>
    psql(agentConninfo({ ...f, agent: a }, f.people.alice, dbUser, 'orders'), sql);
  /** An agent logging in with passwords from Secret "pw", verifying the server against `caPem`. */
  const passwordAgent = (caPem: string, passwords: Record<string, string>, serverName?: string) =>
    agentWith(
      db({
        tls: { mode: 'verify-full', caSecretRef: { name: 'ca', key: 'ca.crt' }, serverName },
        auth: { type: 'password', secretRef: { name: 'pw' } },
      }),
      [secret('ca', { 'ca.crt': caPem }), secret('pw', passwords)],
    );

  it('logs in with a client certificate (spec.auth.type mtls)', async () => {
    const cert = await issueCertificate(backendClientCa, { commonName: 'certuser', usage: 'client' });
    const a = await agentWith(
      db({
        tls: { mode: 'verify-full', caSecretRef: { name: 'ca', key: 'ca.crt' } },
        auth: { type: 'mtls', secretRef: { name: 'client-cert' } },
      }),
      [
        secret('ca', { 'ca.crt': f.pg.ca.certPem }),
        secret('client-cert', { 'tls.crt': cert.certPem, 'tls.key': cert.keyPem }),
      ],
    );
    const r = await via(a, 'certuser', 'select current_user');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('certuser');
  });

  it('logs in where the server asks for a cleartext password (inside TLS)', async () => {
    const a = await passwordAgent(f.pg.ca.certPem, { plain: 'plain-pw' });
    const r = await via(a, 'plain', 'select current_user');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('plain');
  });

  it('refuses a backend whose certificate is not signed by spec.tls.caSecretRef', async () => {
    const rogue = await createCA({ commonName: 'not the server CA' });
    const a = await passwordAgent(rogue.certPem, { alice: PASSWORDS.alice });
    const r = await via(a, 'alice', 'select 1');
    expect(r.stderr).toContain('TLS to the database failed');
    expect(r.stderr).toContain('spec.tls.caSecretRef');
  });

  it('refuses a backend whose certificate does not name spec.tls.serverName (verify-full)', async () => {
    const a = await passwordAgent(f.pg.ca.certPem, { alice: PASSWORDS.alice }, 'db.example.com');
    const r = await via(a, 'alice', 'select 1');
    expect(r.stderr).toContain('TLS to the database failed');
    expect(r.stderr).toContain('db.example.com');
  });

  it('names the Secret when the backend rejects its password, without showing the password', async () => {
    const a = await passwordAgent(f.pg.ca.certPem, { alice: 'wrong-password-123' });
    const r = await via(a, 'alice', 'select 1');
    expect(r.stderr).toContain('password authentication failed for user "alice"');
    expect(r.stderr).toContain('Secret "pw"');
    expect(r.stderr).not.toContain('wrong-password-123');
  });
});
