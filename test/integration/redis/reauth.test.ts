// Re-AUTH before a rotating credential expires (ElastiCache IAM tokens: AWS cuts an IAM-authenticated
// connection 12 h after its last AUTH), against real Redis 7. A test provider stands in for the IAM
// one under the `password` auth type: for user `rot` every call sets a new password on the server
// (ACL SETUSER rot resetpass >new — only the newest is accepted) and says it expires in about a second.
// The agent must AUTH again on the same backend connection with each new password, in order with
// the session's commands, and end the session with a clear error when the backend refuses.
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ProviderFactory } from '../../../src/agent/credentials.js';
import { agentParts } from '../../../src/wiring.js';
import { REDIS_USERS, type RedisUserName } from '../../support/redis.js';
import { type RedisFixture, startRedisFixture } from './fixture.js';

const LIFETIME_MS = 1000;
let f: RedisFixture;
/** A direct connection to the server (one AUTH, at connect): sets passwords, reads AUTH counts. */
let admin: Redis;
const issued: { password: string; expiresAt: number }[] = [];
/** When set, new passwords are not put on the server: the next re-AUTH is refused. */
let refuse = false;

const rotatingPasswords: ProviderFactory = () => ({
  async get({ dbUser }) {
    if (dbUser !== 'rot') {
      return { kind: 'password', user: dbUser, password: REDIS_USERS[dbUser as RedisUserName].password };
    }
    const password = `token-${issued.length}-${Math.random().toString(36).slice(2)}`;
    if (!refuse) await admin.call('ACL', 'SETUSER', 'rot', 'resetpass', `>${password}`);
    const expiresAt = Date.now() + LIFETIME_MS;
    issued.push({ password, expiresAt });
    return { kind: 'password', user: 'rot', password, expiresAt: new Date(expiresAt) };
  },
});
/** The real build with the rotating provider above as `password`. */
const parts = { ...agentParts, credentials: { ...agentParts.credentials, password: rotatingPasswords } };

/** AUTH calls the server has seen (`INFO commandstats`), and how many it refused. */
async function authStats(): Promise<{ calls: number; failed: number }> {
  const info = String(await admin.call('INFO', 'commandstats'));
  const m = /cmdstat_auth:calls=(\d+),.*failed_calls=(\d+)/.exec(info);
  return { calls: Number(m?.[1] ?? 0), failed: Number(m?.[2] ?? 0) };
}

async function until(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  f = await startRedisFixture(parts);
  admin = new Redis({
    host: f.redis.host,
    port: f.redis.plainPort,
    username: 'admin',
    password: REDIS_USERS.admin.password,
  });
  await admin.call('ACL', 'SETUSER', 'rot', 'on', '~*', '&*', '+@all');
});

afterAll(async () => {
  admin?.disconnect();
  await f?.stop();
});

beforeEach(() => {
  refuse = false;
});

describe('re-AUTH of a rotating backend credential', () => {
  it('keeps the session on the same backend connection past expiresAt, AUTHing with each new password', async () => {
    const client = f.ioredis('ops', { username: 'rot', password: 'ignored' });
    expect(await client.call('ACL', 'WHOAMI')).toBe('rot');
    const backendId = await client.call('CLIENT', 'ID');
    const first = issued.length;
    const before = await authStats();
    // Two renewals: the second proves the timer re-arms with the new credential's expiresAt.
    await until('two renewals', () => issued.length >= first + 2);
    const lastExpiry = issued.at(-1)!.expiresAt;
    await until('the first credential to expire', () => Date.now() > issued[first - 1]!.expiresAt);
    // Replies on the same connection come after the re-AUTH queued before them.
    expect(await client.set('rotated', 'yes')).toBe('OK');
    expect(await client.get('rotated')).toBe('yes');
    expect(await client.call('ACL', 'WHOAMI')).toBe('rot');
    expect(await client.call('CLIENT', 'ID')).toBe(backendId);
    const after = await authStats();
    expect(after.calls - before.calls).toBeGreaterThanOrEqual(2);
    expect(after.failed).toBe(before.failed);
    expect(lastExpiry).toBeGreaterThan(issued[first - 1]!.expiresAt);
    client.disconnect();
  });

  it('never puts an AUTH inside an open MULTI: EXEC answers exactly the queued commands, the re-AUTH follows', async () => {
    const client = f.ioredis('ops', { username: 'rot', password: 'ignored' });
    expect(await client.call('ACL', 'WHOAMI')).toBe('rot');
    expect(await client.call('MULTI')).toBe('OK');
    expect(await client.call('SET', 'in-tx', '1')).toBe('QUEUED');
    // Hold the transaction open until the credential the session holds has expired.
    const held = issued.at(-1)!;
    await until('the held credential to expire', () => Date.now() > held.expiresAt);
    const renewalsBeforeExec = issued.length;
    expect(await client.call('EXEC')).toEqual(['OK']);
    await until('a renewal after EXEC', () => issued.length > renewalsBeforeExec);
    expect(await client.get('in-tx')).toBe('1');
    expect(await client.call('ACL', 'WHOAMI')).toBe('rot');
    client.disconnect();
  });

  it('logs back in after RESET with a fresh password, not the one the session started with', async () => {
    const client = f.ioredis('ops', { username: 'rot', password: 'ignored' });
    expect(await client.call('ACL', 'WHOAMI')).toBe('rot');
    // After a renewal the server accepts only the newest password: the session's own is stale.
    const renewed = issued.length;
    await until('a renewal', () => issued.length > renewed);
    expect(await client.call('RESET')).toBe('RESET');
    expect(await client.call('ACL', 'WHOAMI')).toBe('rot');
    client.disconnect();
  });

  it('ends the session with BACKEND_AUTH_FAILED when the backend refuses the re-AUTH', async () => {
    const socket: TLSSocket = await f.raw('ops');
    let received = '';
    socket.on('data', (d: Buffer) => (received += d.toString()));
    let closed = false;
    socket.once('close', () => (closed = true));
    socket.write('AUTH rot ignored\r\n');
    await until('the login', () => received.startsWith('+OK\r\n'));
    refuse = true;
    await until('the agent to end the session', () => closed);
    expect(received).toMatch(
      /^\+OK\r\n-WRONGPASS re-authentication before the credential expired was refused: the backend refused the agent's login as "rot"/,
    );
  });
});
