// How sessions end: a config reload that revokes access, the role's maxSessionTTL, and malformed or
// oversized input — each ends the one session concerned, with a FATAL the client can read, while other
// sessions and the agent carry on.
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, baseDocs, pgClient, role, startFixture, user } from './fixture.js';
import { startTestAgent } from '../../support/agent.js';
import { rawSession } from './raw-client.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

const docs = (overrides: Parameters<typeof baseDocs>[2] = {}) =>
  baseDocs(f.pg.port, f.pg.ca.certPem, overrides);

/** Rewrites agent.yaml and waits until the agent has loaded it (it polls the file once a second). */
async function reload(next: object[], roleName: string) {
  await f.agent.writeDocs(next);
  const state = f.agent.running.agent.state;
  for (let i = 0; i < 100 && !state.policy.roles.some((r) => r.metadata.name === roleName); i++)
    await sleep(50);
}

/** Connects a pg client and records the error that ends it, with when it arrived. */
async function watched(c: pg.Client) {
  await c.connect();
  const ended = new Promise<{ err: Error & { code?: string }; at: number }>((resolve) =>
    c.on('error', (err) => resolve({ err, at: Date.now() })),
  );
  return { client: c, ended };
}

describe('revocation and expiry', () => {
  it('ends a live session within 5 s when a config reload removes access, and refuses new ones', async () => {
    const s = await watched(pgClient(f, f.people.dave, 'alice', 'orders'));
    const other = await watched(pgClient(f, f.people.alice, 'alice', 'orders'));
    expect((await s.client.query('select 1 as one')).rows[0].one).toBe(1);
    const rewrittenAt = Date.now();
    await f.agent.writeDocs(
      docs({
        users: [user('alice', ['dev'], { dbUsers: ['alice', 'bob'], dbNames: ['orders'] })],
      }),
    );
    const { err, at } = await s.ended;
    console.log(`revoked ${at - rewrittenAt} ms after the config was rewritten`);
    expect(at - rewrittenAt).toBeLessThan(5_000);
    expect(err.code).toBe('28000');
    expect(err.message).toContain('access revoked');
    expect(err.message).toContain('dave');
    // alice is still allowed: her session is untouched.
    expect((await other.client.query('select 2 as two')).rows[0].two).toBe(2);
    await other.client.end();
    const again = pgClient(f, f.people.dave, 'alice', 'orders');
    await expect(again.connect()).rejects.toMatchObject({ code: '28000' });
    await reload(docs(), 'no-secrets');
  });

  it("ends a session at its role's maxSessionTTL", async () => {
    await f.agent.writeDocs(
      docs({
        roles: [
          role(
            'short',
            { databaseLabels: { env: '*' }, databaseUsers: ['alice'], databaseNames: ['orders'] },
            {},
            '2s',
          ),
        ],
        users: [user('alice', ['short'], {})],
      }),
    );
    await sleep(2_500); // the agent polls its config file once a second
    const s = await watched(pgClient(f, f.people.alice, 'alice', 'orders'));
    const { err } = await s.ended;
    expect(err.code).toBe('28000');
    expect(err.message).toContain('maximum session TTL');
    await reload(docs(), 'dev');
  });
});

describe('agent shutdown', () => {
  it('ends open sessions with admin_shutdown (57P01) once the drain time is up', async () => {
    const extra = await startTestAgent({ database: 'orders-pg', docs: docs(), tls: f.agentTls });
    try {
      const s = await watched(pgClient({ ...f, agent: extra }, f.people.alice, 'alice', 'orders'));
      expect((await s.client.query('select 1 as one')).rows[0].one).toBe(1);
      await extra.stop(100);
      const { err } = await s.ended;
      expect(err.code).toBe('57P01');
      expect(err.message).toContain('shutting down');
    } finally {
      await extra.stop();
    }
  });
});

describe('malformed input ends one session only', () => {
  const cases: [string, Buffer, string, string][] = [
    ['an unknown message type', Buffer.from([0x01, 0, 0, 0, 4]), '08P01', 'invalid frontend message type'],
    ['a negative length', Buffer.from([0x51, 0xff, 0xff, 0xff, 0xf0]), '08P01', 'invalid length'],
    ['a 2 GiB Query', Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]), '08P01', 'exceeds the limit'],
    ['a Sync of 1 MB', Buffer.from([0x53, 0x00, 0x10, 0x00, 0x00]), '08P01', 'exceeds the limit'],
    [
      'a Bind with a bad parameter count',
      Buffer.from([0x42, 0, 0, 0, 10, 0, 0, 0, 0, 0xff, 0xff]),
      '08P01',
      'Bind',
    ],
  ];

  it.each(cases)('%s', async (_name, bytes, code, message) => {
    const bystander = pgClient(f, f.people.alice, 'alice', 'orders');
    await bystander.connect();
    try {
      const s = await rawSession(f, f.people.alice, 'alice', 'orders');
      s.tls.write(bytes);
      const err = await s.errorUntilClose();
      expect(err).toMatchObject({ code, severity: 'FATAL' });
      expect(err!.message).toContain(message);
      expect((await bystander.query('select 42 as answer')).rows[0].answer).toBe(42);
    } finally {
      await bystander.end();
    }
  });

  it('closes connections that never speak PostgreSQL, and keeps serving', async () => {
    const exchange = (bytes: Buffer[]) =>
      new Promise<string>((resolve) => {
        const sock = connect({ host: '127.0.0.1', port: f.agent.port });
        let got = '';
        sock.on('data', (d) => (got += d.toString('latin1')));
        sock.on('error', () => undefined);
        sock.on('close', () => resolve(got));
        sock.on('connect', async () => {
          for (const b of bytes) {
            sock.write(b);
            await sleep(50);
          }
        });
      });
    // An HTTP request: its first four bytes read as a 1.1 GB startup length.
    expect(await exchange([Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')])).toContain(
      'invalid startup packet length',
    );
    // SSLRequest answered 'S', then no TLS at all.
    const sslRequest = Buffer.from([0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f]);
    expect(await exchange([sslRequest, Buffer.from('not a TLS ClientHello at all')])).toBe('S');
    const c = pgClient(f, f.people.alice, 'alice', 'orders');
    await c.connect();
    expect((await c.query('select 7 as n')).rows[0].n).toBe(7);
    await c.end();
  });

  it('audits the end of the broken session with its reason', async () => {
    const s = await rawSession(f, f.people.alice, 'bob', 'orders');
    s.tls.write(Buffer.from([0x51, 0x7f, 0xff, 0xff, 0xff]));
    await s.errorUntilClose();
    await sleep(200);
    const ends = (await f.agent.auditEvents()).filter((e) => e.type === 'session.end' && e.dbUser === 'bob');
    expect(ends.at(-1)!.reason).toMatch(/^MESSAGE_TOO_LARGE: /);
  });
});
