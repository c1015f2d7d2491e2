// The attacker who may log in and wants another role than the one they were given, or to cancel or
// recognise sessions that are not theirs; and the client that needs the server's real identity (its
// PID in NOTIFY, pg_stat_activity, pg_terminate_backend). Real PostgreSQL 15 through the real agent.
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, pgClient, startFixture } from '../postgres/fixture.js';
import { cancelPlain, rawSession } from '../postgres/raw-client.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
  // alice may SET ROLE carol on the server itself: only the agent's refusal stops a startup option.
  await f.pg.admin('GRANT carol TO alice');
});
afterAll(async () => {
  await f?.stop();
});

/** The key from BackendKeyData and the notification event, which @types/pg leaves out. */
interface PgInternals {
  processID: number;
  secretKey: number;
}
const key = (c: pg.Client) => c as unknown as PgInternals;

async function withClient<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = pgClient(f, f.people.alice, 'alice', 'orders');
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

describe('startup options that change the role', () => {
  it.each([
    ['options', '-c role=carol'],
    ['options', '-c  Role=carol -c work_mem=64kB'],
    ['options', '-crole=carol'],
    ['options', '--role=carol'],
    ['options', '-c session_authorization=carol'],
    ['options', '--session-authorization=carol'],
    ['options', '-c\\ x=1 -c session_authorization=carol'],
    ['role', 'carol'],
    ['session_authorization', 'carol'],
    ['ROLE', 'carol'],
  ])('refuses %s=%s with an error naming why, and audits the denial', async (name, value) => {
    await expect(rawSession(f, f.people.alice, 'alice', 'orders', { [name]: value })).rejects.toThrow(
      /changes the role.*SET ROLE/,
    );
    await sleep(50);
    const denied = (await f.agent.auditEvents()).filter((e) => e.type === 'session.denied');
    expect(denied.at(-1)).toMatchObject({
      user: 'alice',
      dbUser: 'alice',
      reason: expect.stringContaining('changes the role'),
    });
  });

  it('lets other options through', async () => {
    const s = await rawSession(f, f.people.alice, 'alice', 'orders', { options: '-c work_mem=64kB' });
    s.tls.destroy();
  });
});

describe('cancel keys carry the server PID', () => {
  it('hands the client the real backend PID', async () => {
    await withClient(async (c) => {
      const pid = (await c.query('SELECT pg_backend_pid() AS pid')).rows[0].pid;
      expect(key(c).processID).toBe(pid);
      const seen = await f.pg.admin(`SELECT usename FROM pg_stat_activity WHERE pid = ${key(c).processID}`);
      expect(seen.trim()).toBe('alice');
    });
  });

  it('NOTIFY carries the PID the client was given', async () => {
    await withClient(async (c) => {
      const got = new Promise<number>((resolve) => c.on('notification', (n) => resolve(n.processId)));
      await c.query('LISTEN ch');
      await c.query("NOTIFY ch, 'hello'");
      expect(await got).toBe(key(c).processID);
    });
  });

  it('pg_terminate_backend(the given PID) ends that session', async () => {
    await withClient(async (c) => {
      const done = c.query('SELECT pg_sleep(30)').then(
        () => 'finished',
        (err: { code?: string }) => err.code,
      );
      await sleep(200);
      expect((await f.pg.admin(`SELECT pg_terminate_backend(${key(c).processID})`)).trim()).toBe('t');
      expect(await done).toBe('57P01');
    });
  });

  it('a plaintext CancelRequest cancels with the right secret only', async () => {
    await withClient(async (c) => {
      const { processID, secretKey } = key(c);
      const started = Date.now();
      const done = c.query('SELECT pg_sleep(30)').then(
        () => 'finished',
        (err: { code?: string }) => err.code,
      );
      await sleep(200);
      for (const wrong of [secretKey ^ 1, secretKey ^ (1 << 31), 0])
        await cancelPlain(f.agent.port, processID, wrong);
      await sleep(500);
      const active = await f.pg.admin(`SELECT state FROM pg_stat_activity WHERE pid = ${processID}`);
      expect(active.trim()).toBe('active');
      await cancelPlain(f.agent.port, processID, secretKey);
      expect(await done).toBe('57014');
      expect(Date.now() - started).toBeLessThan(10_000);
    });
  });

  it('gives each session its own random secret', async () => {
    const secrets = new Set<number>();
    for (let i = 0; i < 5; i++) {
      await withClient(async (c) => {
        secrets.add(key(c).secretKey);
      });
    }
    expect(secrets.size).toBe(5);
  });
});
