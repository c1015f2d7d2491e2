// Hostile: a revocation that lands while a Redis session is logging in. The access decision is made
// before the backend login, which takes network round trips; a policy change re-checks the sessions
// the agent tracks, and one still logging in is either not tracked yet (its first connect) or tracked
// as the database user it is leaving (AUTH). A person who expects to lose access keeps logging in, so
// that one login is always in flight when the change lands. Played against the real agent and Redis 7,
// whose commands are held with CLIENT PAUSE while the policy changes.
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../../src/agent/audit.js';
import { accessRole } from '../../support/redis.js';
import { type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { until } from './audit-support.js';
import { exchange, pipeline, untilClosed } from './resp.js';

let f: RedisFixture;

beforeAll(async () => {
  f = await startRedisFixture();
}, 60_000);

// The agent's stop ends the sessions left.
afterAll(() => f?.stop());

const PAUSE_MS = 5000;

/**
 * Holds the server's commands, sends `commands` on `alice` (a login to stall), writes `docs` and waits
 * until the agent refuses `refused` (an AUTH it decides without the server); then the server resumes
 * and what `alice` is told until the agent closes it is returned. The documents are restored after.
 */
async function revokeWhilePaused(
  alice: TLSSocket,
  commands: string[][],
  docs: object[],
  refused: string[],
): Promise<{ replies: unknown[]; closed: boolean }> {
  const pausedUntil = Date.now() + PAUSE_MS;
  await f.redis.cli(['CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL']);
  try {
    const ended = untilClosed(alice, PAUSE_MS + 5000);
    alice.write(pipeline(commands));
    await f.agent.writeDocs(docs);
    // A refusal needs no server; an AUTH still allowed waits behind the pause like the login.
    await until('the agent applied the change', async () => {
      const probe = await f.raw('alice');
      const reply = exchange(probe, pipeline([refused]), 1).then(([r]) => r, String);
      const got = await Promise.race([reply, sleep(300).then(() => 'waiting')]);
      probe.destroy();
      return String(got).startsWith('-NOPERM');
    });
    // Else the login was not in flight when the change landed, and this tests nothing.
    expect(Date.now()).toBeLessThan(pausedUntil - 500);
    return await ended;
  } finally {
    await f.agent.writeDocs(redisDocs(f.redis));
  }
}

/** The last session.denied of alice's. */
async function lastDenial(): Promise<AuditEvent | undefined> {
  let denial: AuditEvent | undefined;
  await until('session.denied', async () => {
    const events = await f.agent.auditEvents();
    denial = events.findLast((e) => e.type === 'session.denied' && e.user === 'alice');
    return /^access revoked/.test(String(denial?.reason));
  });
  return denial;
}

const named = (d: object, kind: string, name: string) =>
  (d as { kind: string }).kind === kind && (d as { metadata: { name: string } }).metadata.name === name;

describe('a revocation while the backend logs in', () => {
  it('AUTH to a database user revoked meanwhile: the session ends, it never runs as that user', async () => {
    const alice = await f.raw('alice');
    expect(await exchange(alice, pipeline([['ACL', 'WHOAMI']]), 1)).toEqual(['default']);
    // alice may no longer be `app`, only `default`.
    const docs = redisDocs(f.redis).map((d) =>
      named(d, 'AccessRole', 'developer')
        ? accessRole(
            'developer',
            { databaseLabels: { env: '*' }, databaseUsers: ['default'] },
            { redisCommands: ['@dangerous'] },
          )
        : d,
    );
    const commands = [
      ['AUTH', 'app', 'x'],
      ['ACL', 'WHOAMI'],
      ['SET', 'revoked:auth', '1'],
    ];
    const { replies, closed } = await revokeWhilePaused(alice, commands, docs, ['AUTH', 'app', 'x']);
    expect(replies).toEqual([
      expect.stringMatching(/^-ERR access revoked: access to cache as database user "app" denied/),
    ]);
    expect(closed).toBe(true);
    expect(await f.redis.cli(['EXISTS', 'revoked:auth'])).toBe('0\n');
    expect(await lastDenial()).toMatchObject({ dbUser: 'app' });
  });

  it('a first connect whose person is revoked meanwhile: the session ends before any command runs', async () => {
    const docs = redisDocs(f.redis).filter((d) => !named(d, 'DatabaseUser', 'alice'));
    const alice = await f.raw('alice');
    const commands = [
      ['SET', 'revoked:connect', '1'],
      ['ACL', 'WHOAMI'],
    ];
    const { replies, closed } = await revokeWhilePaused(alice, commands, docs, ['AUTH', 'default', 'x']);
    expect(replies).toEqual([expect.stringMatching(/^-ERR access revoked: .*user "alice"/)]);
    expect(closed).toBe(true);
    expect(await f.redis.cli(['EXISTS', 'revoked:connect'])).toBe('0\n');
    expect(await lastDenial()).toMatchObject({ dbUser: 'default' });
  });
});
