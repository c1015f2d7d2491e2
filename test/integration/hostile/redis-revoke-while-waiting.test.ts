// Hostile: a policy change that lands while a Redis session's command waits. Commands are decided
// when they arrive; some run later than that. CLIENT TRACKING ... BCAST first asks the server for the
// database user's key patterns (ACL GETUSER), and is relayed after that round trip; a command queued
// in MULTI runs at EXEC, whenever the client sends it; a blocking command (BLPOP) and what is
// pipelined behind it run when it returns; and a session's TTL was its roles' at login. A
// person who expects to lose a right sends the command before and lets it run after. Played against
// the real agent and Redis 7: the server holds the ACL GETUSER (CLIENT PAUSE, or stopped: SIGSTOP);
// the client holds its transaction open.
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../../src/agent/audit.js';
import { accessRole } from '../../support/redis.js';
import { type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { until } from './audit-support.js';
import { type Shown, exchange, pipeline, untilClosed } from './resp.js';

/** How long CLIENT PAUSE holds the server's commands. */
const PAUSE_MS = 5000;
let f: RedisFixture;

beforeAll(async () => {
  f = await startRedisFixture();
}, 60_000);

afterAll(() => f?.stop());

const named = (d: object, kind: string, name: string) =>
  (d as { kind: string }).kind === kind && (d as { metadata: { name: string } }).metadata.name === name;

/** The test policy with alice's role `developer` replaced by one allowing `users`, denying `deny`. */
function developer(users: string[], deny: string[]): object[] {
  return redisDocs(f.redis).map((d) =>
    named(d, 'AccessRole', 'developer')
      ? accessRole(
          'developer',
          { databaseLabels: { env: '*' }, databaseUsers: users },
          { redisCommands: deny },
        )
      : d,
  );
}

/** Waits until a new session of alice's gets replies starting `want` to `probe` (within 300 ms). */
async function applied(probe: string[][], want = '-NOPERM'): Promise<void> {
  await until('the agent applied the change', async () => {
    const s = await f.raw('alice');
    const replies = exchange(s, pipeline(probe), probe.length).then(
      (r) => r.map(String),
      (e) => [String(e)],
    );
    const got = await Promise.race([replies, sleep(300).then(() => ['waiting'])]);
    s.destroy();
    return got.length === probe.length && got.every((r) => r.startsWith(want));
  });
}

/** The test policy again, once in force: alice may be `app` and write (every change here takes one). */
async function restore(): Promise<void> {
  await f.agent.writeDocs(redisDocs(f.redis));
  await applied(
    [
      ['AUTH', 'app', 'x'],
      ['SET', 'restored', '1'],
    ],
    'OK',
  );
}

/**
 * Holds the server's commands, sends `commands` on `alice`, writes `docs` and waits until the agent
 * refuses `probe` (decided without the server); then the server resumes and what `read` gets on
 * `alice` is returned. The documents are restored after.
 */
async function changeWhilePaused<T>(
  alice: TLSSocket,
  commands: string[][],
  docs: object[],
  probe: string[][],
  read: (s: TLSSocket) => Promise<T>,
): Promise<T> {
  const pausedUntil = Date.now() + PAUSE_MS;
  await f.redis.cli(['CLIENT', 'PAUSE', String(PAUSE_MS), 'ALL']);
  try {
    const got = read(alice);
    alice.write(pipeline(commands));
    await f.agent.writeDocs(docs);
    await applied(probe);
    // Else the command was not waiting when the change landed, and this tests nothing.
    expect(Date.now()).toBeLessThan(pausedUntil - 500);
    return await got;
  } finally {
    await restore();
  }
}

/** Audit events of `type` for `command` whose arguments mention `mark`, once the sink has them. */
async function events(type: string, command: string, mark: string, settleMs = 0): Promise<AuditEvent[]> {
  await sleep(settleMs);
  const all = await f.agent.auditEvents();
  return all.filter((e) => e.type === type && e.command === command && JSON.stringify(e.args).includes(mark));
}

const flags = (info: Shown) => (info as Shown[])[(info as Shown[]).indexOf('flags') + 1];

describe('CLIENT TRACKING BCAST while its check waits on the server', () => {
  it('the role loses CLIENT TRACKING meanwhile: refused, naming the rule, audited; tracking stays off', async () => {
    const alice = await f.raw('alice');
    await exchange(alice, pipeline([['HELLO', '3']]), 1);
    const commands = [
      ['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'narrowed:'],
      ['CLIENT', 'TRACKINGINFO'],
    ];
    // alice may no longer track, nor be `app` (the probe, refused without the server).
    const docs = developer(['default'], ['@dangerous', 'client|tracking']);
    const [tracking, info] = await changeWhilePaused(alice, commands, docs, [['AUTH', 'app', 'x']], (s) =>
      exchange(s, '', 2),
    );
    expect(tracking).toMatch(/^-NOPERM drawbridge: role "developer" denies "client\|tracking"/);
    expect(flags(info!)).toEqual(['off']);
    await until(
      'command.denied',
      async () => (await events('command.denied', 'client|tracking', 'narrowed:')).length === 1,
    );
    const [denied] = await events('command.denied', 'client|tracking', 'narrowed:');
    expect(denied).toMatchObject({
      user: 'alice',
      dbUser: 'default',
      reason: 'role "developer" denies "client|tracking"',
    });
    expect(await events('command', 'client|tracking', 'narrowed:', 300)).toEqual([]);
    // The session goes on; AUTH to another user is not held back by a tracking that never started.
    expect(await exchange(alice, pipeline([['AUTH', 'app', 'x']]), 1)).toEqual(['OK']);
    alice.destroy();
  });

  it('the person is revoked meanwhile: the session ends, the command is neither relayed nor audited as run', async () => {
    const alice = await f.raw('alice');
    await exchange(alice, pipeline([['HELLO', '3']]), 1);
    // The server is stopped, not paused: a paused one drops a command whose connection closes, a
    // stopped one answers it on waking, while the agent's side of the connection is still closing.
    const pid = Number(/process_id:(\d+)/.exec(await f.redis.cli(['INFO', 'server']))![1]);
    process.kill(pid, 'SIGSTOP');
    try {
      const ended = untilClosed(alice, 10_000);
      alice.write(pipeline([['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'revoked:']]));
      await f.agent.writeDocs(redisDocs(f.redis).filter((d) => !named(d, 'DatabaseUser', 'alice')));
      const { replies, closed } = await ended;
      process.kill(pid, 'SIGCONT');
      expect(replies).toEqual([expect.stringMatching(/^-ERR access revoked: .*user "alice"/)]);
      expect(closed).toBe(true);
    } finally {
      process.kill(pid, 'SIGCONT');
      await restore();
    }
    expect(await events('command', 'client|tracking', 'revoked:')).toEqual([]);
    expect(await events('command.denied', 'client|tracking', 'revoked:')).toEqual([]);
  });
});

describe('a transaction open across a policy change', () => {
  it('EXEC of a command refused since it was queued: discarded, naming the rule, audited; the rest runs', async () => {
    await f.redis.cli(['DEL', 'tx:write', 'tx:read']);
    const writer = await f.raw('alice');
    const reader = await f.raw('alice');
    const queue = (s: TLSSocket, cmd: string[]) => exchange(s, pipeline([['MULTI'], cmd]), 2);
    expect(await queue(writer, ['SET', 'tx:write', '1'])).toEqual(['OK', 'QUEUED']);
    expect(await queue(reader, ['GET', 'tx:read'])).toEqual(['OK', 'QUEUED']);
    try {
      await f.agent.writeDocs(developer(['default', 'app'], ['@dangerous', '@write']));
      await applied([['SET', 'tx:probe', '1']]);
      const [exec] = await exchange(writer, pipeline([['EXEC']]), 1);
      expect(exec).toBe(
        `-EXECABORT drawbridge: Transaction discarded: the transaction's "set" is refused since it was queued: role "developer" denies "@write"`,
      );
      expect(await f.redis.cli(['EXISTS', 'tx:write'])).toBe('0\n');
      // Nothing of the transaction is left open on the backend connection.
      expect(await exchange(writer, pipeline([['GET', 'tx:write']]), 1)).toEqual([null]);
      // A transaction whose commands are all still allowed runs as before.
      expect(await exchange(reader, pipeline([['EXEC']]), 1)).toEqual([[null]]);
    } finally {
      await restore();
    }
    await until('command.denied', async () =>
      (await f.agent.auditEvents()).some((e) => e.type === 'command.denied' && e.command === 'exec'),
    );
    const denied = (await f.agent.auditEvents()).find(
      (e) => e.type === 'command.denied' && e.command === 'exec',
    );
    expect(denied).toMatchObject({
      user: 'alice',
      reason: expect.stringMatching(
        /"set" is refused since it was queued: role "developer" denies "@write"$/,
      ),
    });
    writer.destroy();
    reader.destroy();
  });
});

describe('a blocking command, and commands waiting on the server behind it', () => {
  /** A session of alice's, established (its first command needs the server), the keys cleared. */
  async function started(): Promise<TLSSocket> {
    await f.redis.cli(['DEL', 'blk:list', 'blk:write', 'blk:read']);
    const alice = await f.raw('alice');
    expect(await exchange(alice, pipeline([['PING']]), 1)).toEqual(['PONG']);
    return alice;
  }

  /**
   * Sends `commands` on a session of alice's (BLPOP blk:list first: they wait), then narrows her role
   * to deny `deny` and pushes to blk:list; what she is told until the session closes.
   */
  async function blockThenNarrow(commands: string[][], deny: string) {
    const alice = await started();
    const ended = untilClosed(alice, 5000);
    alice.write(pipeline([['BLPOP', 'blk:list', '0'], ...commands]));
    try {
      await f.agent.writeDocs(developer(['default', 'app'], ['@dangerous', deny]));
      await applied([['SET', 'blk:probe', '1']]);
      await f.redis.cli(['RPUSH', 'blk:list', 'go']);
      return await ended;
    } finally {
      await restore();
    }
  }

  it('one the grant refuses since: the session ends, its connection closes, nothing of it runs', async () => {
    // Redis runs the SET once BLPOP returns: whenever someone pushes, or its timeout.
    const { replies, closed } = await blockThenNarrow([['SET', 'blk:write', '1']], 'set');
    expect(replies).toEqual([
      expect.stringMatching(
        /^-ERR access revoked: "set" still waits on the server \(a blocking command, or behind one\) and is refused now: role "developer" denies "set"/,
      ),
    ]);
    expect(closed).toBe(true);
    // The connection closed with the session: Redis dropped the BLPOP and the SET behind it.
    expect(await f.redis.cli(['EXISTS', 'blk:write'])).toBe('0\n');
    expect(await f.redis.cli(['LLEN', 'blk:list'])).toBe('1\n');
  });

  it('the blocking command itself refused since (BLPOP pops: @write): the session ends before it pops', async () => {
    const { replies, closed } = await blockThenNarrow([], '@write');
    expect(replies).toEqual([
      expect.stringMatching(/^-ERR access revoked: "blpop" still waits on the server/),
    ]);
    expect(closed).toBe(true);
    expect(await f.redis.cli(['LLEN', 'blk:list'])).toBe('1\n');
  });

  it('all still allowed: the session goes on, the commands run', async () => {
    const alice = await started();
    const replies = exchange(
      alice,
      pipeline([
        ['BLPOP', 'blk:list', '0'],
        ['GET', 'blk:read'],
      ]),
      2,
    );
    try {
      await f.agent.writeDocs(developer(['default', 'app'], ['@dangerous', 'set']));
      await applied([['SET', 'blk:probe', '1']]);
      await f.redis.cli(['RPUSH', 'blk:list', 'go']);
      expect(await replies).toEqual([['blk:list', 'go'], null]);
    } finally {
      await restore();
    }
    alice.destroy();
  });

  it('WAIT blocks too (not @blocking): what waits behind it and is refused since ends the session', async () => {
    // No replica acknowledges: WAIT 1 returns at its timeout, which the client chose, and Redis
    // runs the SET behind it then.
    const alice = await started();
    const ended = untilClosed(alice, 8000);
    alice.write(
      pipeline([
        ['WAIT', '1', '4000'],
        ['SET', 'blk:write', '1'],
      ]),
    );
    try {
      await f.agent.writeDocs(developer(['default', 'app'], ['@dangerous', 'set']));
      await applied([['SET', 'blk:probe', '1']]);
      const { replies, closed } = await ended;
      expect(replies).toEqual([
        expect.stringMatching(/^-ERR access revoked: "set" still waits on the server \(a blocking command/),
      ]);
      expect(closed).toBe(true);
      await sleep(4500);
      expect(await f.redis.cli(['EXISTS', 'blk:write'])).toBe('0\n');
    } finally {
      await restore();
    }
  });
});

describe('what keeps acting after the command that started it: subscriptions, tracking', () => {
  /** Narrows alice's role to deny `deny` too; what `alice` is told until closed (or 2 s). */
  async function narrowed(alice: TLSSocket, deny: string[]) {
    const ended = untilClosed(alice, 2000);
    try {
      await f.agent.writeDocs(developer(['default', 'app'], ['@dangerous', ...deny]));
      await applied([['SET', 'standing:probe', '1']]);
      return await ended;
    } finally {
      await restore();
    }
  }

  it('a subscription whose SUBSCRIBE is refused since: the session ends', async () => {
    const alice = await f.raw('alice');
    expect(await exchange(alice, pipeline([['SUBSCRIBE', 'news']]), 1)).toEqual([['subscribe', 'news', 1]]);
    const { replies, closed } = await narrowed(alice, ['subscribe', 'set']);
    expect(replies).toEqual([
      expect.stringMatching(
        /^-ERR access revoked: the session still listens on what "subscribe" subscribed to, which is refused now: role "developer" denies "subscribe"/,
      ),
    ]);
    expect(closed).toBe(true);
  });

  it('a session that unsubscribed goes on', async () => {
    const alice = await f.raw('alice');
    await exchange(alice, pipeline([['SUBSCRIBE', 'news'], ['UNSUBSCRIBE']]), 2);
    const { replies, closed } = await narrowed(alice, ['subscribe', 'set']);
    expect({ replies, closed }).toEqual({ replies: [], closed: false });
    expect(await exchange(alice, pipeline([['PING']]), 1)).toEqual(['PONG']);
    alice.destroy();
  });

  it('CLIENT TRACKING still on, refused since: the session ends', async () => {
    const alice = await f.raw('alice');
    await exchange(
      alice,
      pipeline([
        ['HELLO', '3'],
        ['CLIENT', 'TRACKING', 'ON'],
      ]),
      2,
    );
    const { replies, closed } = await narrowed(alice, ['client|tracking', 'set']);
    expect(replies).toEqual([
      expect.stringMatching(
        /^-ERR access revoked: CLIENT TRACKING is still on, which is refused now: role "developer" denies "client\|tracking"/,
      ),
    ]);
    expect(closed).toBe(true);
  });
});

describe('a policy change that shortens the session TTL', () => {
  it("a session older than its roles' new maxSessionTTL ends now, with the reason", async () => {
    const alice = await f.raw('alice');
    expect(await exchange(alice, pipeline([['PING']]), 1)).toEqual(['PONG']);
    await sleep(1500);
    const ended = untilClosed(alice, 5000);
    const docs = developer(['default', 'app'], ['@dangerous']).map((d) =>
      named(d, 'AccessRole', 'developer')
        ? { ...d, spec: { ...(d as { spec: object }).spec, options: { maxSessionTTL: '1s' } } }
        : d,
    );
    try {
      await f.agent.writeDocs(docs);
      const { replies, closed } = await ended;
      expect(replies).toEqual([
        expect.stringMatching(/^-ERR session reached the maximum session TTL of its role/),
      ]);
      expect(closed).toBe(true);
    } finally {
      await restore();
    }
  });
});
