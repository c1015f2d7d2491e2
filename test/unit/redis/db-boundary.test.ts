// The DB-number guards, table-driven: which spellings of SELECT, COPY ... DB, MIGRATE, SWAPDB, MOVE
// and REPLICAOF stay in the Database's DB (3 here; a cluster's 0) and which are refused; which replies
// are cut to it (CLIENT LIST, INFO, PUBSUB CHANNELS) unless a role grants allow.redisServerWide.
import { describe, expect, it } from 'vitest';
import { type GuardContext, dbGuards } from '../../../src/engines/redis/db-boundary.js';
import { commandName } from '../../../src/engines/redis/command-name.js';
import type { RedisCommand } from '../../../src/engines/redis/parser.js';
import { OK, encodeCommand } from '../../../src/engines/redis/serializer.js';

const cmd = (...args: string[]): RedisCommand => {
  const bufs = args.map((a) => Buffer.from(a));
  return { name: commandName(bufs), args: bufs, raw: encodeCommand(bufs) };
};

const session = (inMulti: boolean): GuardContext => ({
  inMulti,
  protocol: 2,
  dbUser: 'default',
  ask: () => Promise.reject(new Error('unused')),
});

function verdict(guards: ReturnType<typeof dbGuards>, c: RedisCommand, inMulti = false): string {
  const guard = guards.get(c.name);
  const r = guard?.(c, session(inMulti));
  if (r === undefined) return 'relay';
  if ('translate' in r) return 'cut';
  return 'answer' in r ? (r.answer.equals(OK) ? 'OK' : 'answer') : 'refuse' in r ? 'refuse' : 'check';
}

describe('dbGuards, standalone DB 3', () => {
  const g = dbGuards(3, false);
  it.each([
    [cmd('SELECT', '3'), 'OK'],
    [cmd('SELECT', '0'), 'refuse'],
    [cmd('SELECT', '03'), 'refuse'], // Redis reads "03" as invalid, not 3: exact text only
    [cmd('SELECT', '+3'), 'refuse'],
    [cmd('SELECT'), 'relay'], // the server's arity error
    [cmd('SELECT', '3', 'x'), 'relay'],
    [cmd('SWAPDB', '3', '3'), 'refuse'],
    [cmd('MOVE', 'k', '3'), 'refuse'],
    [cmd('COPY', 'a', 'b'), 'relay'],
    [cmd('COPY', 'a', 'b', 'REPLACE', 'db', '3'), 'relay'],
    [cmd('COPY', 'a', 'b', 'DB', '0'), 'refuse'],
    [cmd('COPY', 'a', 'b', 'DB', '3', 'DB', '0'), 'refuse'], // Redis takes the last DB option
    [cmd('COPY', 'a', 'b', 'DB'), 'relay'], // the server's syntax error
    [cmd('MIGRATE', 'h', '1', 'k', '3', '100'), 'relay'],
    [cmd('MIGRATE', 'h', '1', 'k', '0', '100'), 'refuse'],
    [cmd('FLUSHDB'), 'relay'], // FLUSHALL, SLOWLOG GET...: the policy's server-wide rule
    [cmd('MONITOR'), 'refuse'],
    [cmd('CLIENT', 'LIST'), 'cut'],
    [cmd('INFO', 'keyspace'), 'cut'],
    [cmd('PUBSUB', 'CHANNELS'), 'cut'],
    [cmd('CLIENT', 'INFO'), 'relay'], // its own connection
    [cmd('REPLICAOF', 'h', '6379'), 'refuse'], // the master's data replaces every DB: server-wide
    [cmd('SLAVEOF', 'h', '6379'), 'refuse'],
    [cmd('REPLICAOF', 'No', 'ONE'), 'relay'], // promotes: the data stays
    [cmd('REPLICAOF', 'no', 'one', 'x'), 'refuse'],
  ])('%#: %s', (c, expected) => {
    expect(verdict(g, c)).toBe(expected);
  });

  it('inside MULTI SELECT 3 is relayed (queued by the server), another DB still refused', () => {
    expect(verdict(g, cmd('SELECT', '3'), true)).toBe('relay');
    expect(verdict(g, cmd('SELECT', '4'), true)).toBe('refuse');
  });

  it('inside MULTI what would be cut is refused: EXEC would return it whole', () => {
    const r = g.get('client|list')!(cmd('CLIENT', 'LIST'), session(true));
    expect(r).toMatchObject({ rule: 'server_wide' });
    expect((r as { refuse: string }).refuse).toMatch(
      /^CLIENT LIST inside MULTI .*allow\.redisServerWide: true$/,
    );
  });

  it('with allow.redisServerWide: REPLICAOF a master and the uncut replies; never another DB, nor MONITOR', () => {
    const wide = dbGuards(3, false, true);
    expect(verdict(wide, cmd('REPLICAOF', 'h', '6379'))).toBe('relay');
    expect(verdict(wide, cmd('CLIENT', 'LIST'), true)).toBe('relay');
    expect(verdict(wide, cmd('INFO'))).toBe('relay');
    expect(verdict(wide, cmd('SELECT', '0'))).toBe('refuse');
    expect(verdict(wide, cmd('SWAPDB', '0', '3'))).toBe('refuse');
    expect(verdict(wide, cmd('MONITOR'))).toBe('refuse');
  });

  it('refusals name the boundary and the DB', () => {
    expect(g.get('select')!(cmd('SELECT', '0'), session(false))).toEqual({
      refuse: "the DB number is this Database's boundary (DB 3 in spec.uri): SELECT 0 would leave it",
    });
  });
});

describe('dbGuards, cluster', () => {
  const g = dbGuards(0, true);
  it('DB 0 only; FLUSHALL and MONITOR are left to the cluster router', () => {
    expect(verdict(g, cmd('SELECT', '0'))).toBe('OK');
    expect(g.get('select')!(cmd('SELECT', '1'), session(false))).toEqual({
      refuse: 'Redis Cluster has only DB 0: SELECT 1 would leave it',
    });
    expect(verdict(g, cmd('FLUSHALL'))).toBe('relay');
    expect(verdict(g, cmd('MONITOR'))).toBe('relay'); // the cluster router answers it itself
  });
});
