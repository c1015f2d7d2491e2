// Hostile: session state across RESET against a real Redis 7 and the 6-node TLS+ACL cluster. RESET
// must leave nothing of a transaction behind (a refused command inside MULTI must not poison the next
// one), a RESET the roles refuse leaves the transaction and tracking as they are, and when the agent
// cannot log the backend back in after RESET the session ends: it never goes on as the server's
// `default` user.
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestAgent } from '../../support/agent.js';
import { REDIS_USERS, accessRole } from '../../support/redis.js';
import { type ClusterFixture, startClusterFixture } from '../redis/cluster-fixture.js';
import { type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { exchange, pipeline, untilClosed } from './resp.js';

let f: RedisFixture;
let cluster: ClusterFixture;
const sockets: TLSSocket[] = [];

beforeAll(async () => {
  [f, cluster] = await Promise.all([startRedisFixture(), startClusterFixture()]);
}, 120_000);

afterAll(async () => {
  sockets.forEach((s) => s.destroy());
  await f?.stop();
  await cluster?.stop();
});

const track = async (s: Promise<TLSSocket>) => {
  const socket = await s;
  sockets.push(socket);
  return socket;
};

describe.each(['standalone', 'cluster'] as const)('%s: RESET', (mode) => {
  it('clears all transaction state: a refused command before RESET does not abort the next MULTI', async () => {
    const alice = await track(mode === 'cluster' ? cluster.raw('alice') : f.raw('alice'));
    const out = await exchange(
      alice,
      pipeline([
        ['MULTI'],
        ['FLUSHDB'],
        ['RESET'],
        ['MULTI'],
        ['SET', 'rs:k', 'v'],
        ['EXEC'],
        ['GET', 'rs:k'],
      ]),
      7,
    );
    expect(out[0]).toBe('OK');
    expect(out[1]).toMatch(/^-NOPERM/);
    expect(out.slice(2)).toEqual(['RESET', 'OK', 'QUEUED', ['OK'], 'v']);
  });
});

describe('standalone: a RESET the roles refuse changes nothing', () => {
  let agent: TestAgent;

  beforeAll(async () => {
    // alice's developer role also denies RESET.
    const docs = redisDocs(f.redis).map((d) =>
      (d as { kind: string; metadata: { name: string } }).kind === 'AccessRole' &&
      (d as { metadata: { name: string } }).metadata.name === 'developer'
        ? accessRole(
            'developer',
            { databaseLabels: { env: '*' }, databaseUsers: ['default', 'app'] },
            { redisCommands: ['@dangerous', 'reset'] },
          )
        : d,
    );
    agent = await f.startAgent(docs);
  });

  it('the transaction a refused command tainted still aborts at EXEC', async () => {
    await f.redis.cli(['DEL', 'rs:partial']);
    const alice = await track(f.rawAt(agent.port, 'alice'));
    const out = await exchange(
      alice,
      pipeline([['MULTI'], ['SET', 'rs:partial', '1'], ['FLUSHDB'], ['RESET'], ['EXEC']]),
      5,
    );
    expect(out.slice(0, 2)).toEqual(['OK', 'QUEUED']);
    expect(out[2]).toMatch(/^-NOPERM drawbridge: role "developer" denies "@dangerous"/);
    expect(out[3]).toMatch(/^-NOPERM drawbridge: role "developer" denies "reset"/);
    expect(out[4]).toMatch(/^-EXECABORT/);
    expect(await f.redis.cli(['EXISTS', 'rs:partial'])).toBe('0\n');
  });

  it('CLIENT TRACKING stays on, and AUTH as another user stays refused', async () => {
    const alice = await track(f.rawAt(agent.port, 'alice'));
    const out = await exchange(
      alice,
      pipeline([['HELLO', '3'], ['CLIENT', 'TRACKING', 'ON'], ['RESET'], ['AUTH', 'app', 'x']]),
      4,
    );
    expect(out[1]).toBe('OK');
    expect(out[2]).toMatch(/^-NOPERM drawbridge: role "developer" denies "reset"/);
    expect(out[3]).toMatch(/^-NOPERM AUTH as database user "app" is refused while CLIENT TRACKING is on/);
  });
});

describe('standalone: a failed re-login after RESET', () => {
  let agent: TestAgent;
  const user = 'rotating';

  beforeAll(async () => {
    await f.redis.cli(['ACL', 'SETUSER', user, 'on', '>rotating-pw', '~*', '&*', '+@all']);
    const login = {
      ...Object.fromEntries(Object.entries(REDIS_USERS).map(([u, v]) => [u, v.password])),
      [user]: 'rotating-pw',
    };
    agent = await f.startAgent(redisDocs(f.redis, { auth: 'password', login }));
  });

  it('ends the session instead of going on as default', async () => {
    const ops = await track(f.rawAt(agent.port, 'ops'));
    expect(
      await exchange(
        ops,
        pipeline([
          ['AUTH', user, 'x'],
          ['ACL', 'WHOAMI'],
        ]),
        2,
      ),
    ).toEqual(['OK', user]);
    // The server stops accepting the agent's credential for this user (rotated behind its back).
    await f.redis.cli(['ACL', 'SETUSER', user, 'resetpass', '>changed-pw']);
    const ended = untilClosed(ops);
    ops.write(pipeline([['RESET'], ['ACL', 'WHOAMI'], ['SET', 'after-failed-relogin', 'x']]));
    const { replies, closed } = await ended;
    expect(closed).toBe(true);
    expect(replies[0]).toBe('RESET');
    expect(replies[1]).toMatch(/^-WRONGPASS .*refused the agent's login as "rotating"/);
    expect(replies).toHaveLength(2);
    expect(await f.redis.cli(['EXISTS', 'after-failed-relogin'])).toBe('0\n');
  });
});
