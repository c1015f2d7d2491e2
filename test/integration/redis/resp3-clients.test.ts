// Real RESP3 clients through the agent against a real Redis 7 (standalone): node-redis v5 with
// RESP: 3 and redis-py with protocol=3 (test/python venv) see RESP3 types end to end (maps, sets,
// doubles), pub/sub pushes between replies on one connection, client-side caching invalidated by
// another client's write, scripting as the roles allow, and HELLO 2 going back to RESP2. ioredis
// pinned to RESP2 works as before.
import { Redis } from 'ioredis';
import type { RedisClientOptions } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestAgent } from '../../support/agent.js';
import { TYPED, accessRole, nodeRedisAt } from '../../support/redis.js';
import { type PersonName, type RedisFixture, redisDocs, startRedisFixture } from './fixture.js';
import { expectRedisPyResp3 } from './resp3-py.js';

let f: RedisFixture;
/** The same Database, where alice also holds a role allowing scripts. */
let scripting: TestAgent;
const closers: (() => unknown)[] = [];

beforeAll(async () => {
  f = await startRedisFixture();
  scripting = await f.startAgent([
    ...redisDocs(f.redis),
    accessRole('scripter', {
      databaseLabels: { env: '*' },
      databaseUsers: ['default', 'app'],
      redisScripting: true,
    }),
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'DatabaseUser',
      metadata: { name: 'alice-scripts' },
      spec: { subjects: [{ kind: 'User', name: 'alice' }], roles: ['scripter'] },
    },
  ]);
}, 120_000);

afterAll(async () => {
  for (const close of closers) await Promise.resolve(close()).catch(() => undefined);
  await f?.stop();
});

/** A connected node-redis client (RESP3) through the agent on `port` as `person`. */
function nodeRedis(person: PersonName, opts: Partial<RedisClientOptions> = {}, port = f.agent.port) {
  const p = f.people[person];
  return nodeRedisAt(port, { ca: f.ca.certPem, cert: p.certPem, key: p.keyPem }, closers, opts);
}

async function until<T>(read: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await read();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('node-redis v5, RESP: 3', () => {
  it('hashes are maps, sets are sets, scores are doubles, lists are arrays', async () => {
    const c = await nodeRedis('alice');
    await c.del(['n3:h', 'n3:s', 'n3:z', 'n3:l']);
    await c.hSet('n3:h', { a: '1', b: '2' });
    await c.sAdd('n3:s', ['x', 'y']);
    await c.zAdd('n3:z', [
      { score: 1.5, value: 'm' },
      { score: 2.25, value: 'n' },
    ]);
    await c.rPush('n3:l', ['a', 'b', 'c']);
    // sendCommand returns the decoded reply as is: its RESP3 type shows.
    expect(await c.sendCommand(['HGETALL', 'n3:h'], TYPED)).toEqual(
      new Map([
        ['a', '1'],
        ['b', '2'],
      ]),
    );
    expect(await c.sendCommand(['SMEMBERS', 'n3:s'], TYPED)).toEqual(new Set(['x', 'y']));
    expect(await c.sendCommand(['ZSCORE', 'n3:z', 'm'])).toBe(1.5);
    expect(await c.hGetAll('n3:h')).toEqual({ a: '1', b: '2' });
    expect(await c.zRangeWithScores('n3:z', 0, -1)).toEqual([
      { value: 'm', score: 1.5 },
      { value: 'n', score: 2.25 },
    ]);
    expect(await c.lRange('n3:l', 0, -1)).toEqual(['a', 'b', 'c']);
    expect(((await c.sendCommand(['HELLO'])) as Record<string, unknown>).proto).toBe(3);
  });

  it('pub/sub pushes arrive while the same connection runs commands', async () => {
    const sub = await nodeRedis('alice');
    const pub = await nodeRedis('alice');
    const messages: string[] = [];
    await sub.subscribe('n3:ch', (m) => messages.push(m));
    await sub.set('n3:during', 'yes');
    await pub.publish('n3:ch', 'one');
    expect(await sub.get('n3:during')).toBe('yes');
    await pub.publish('n3:ch', 'two');
    await until(
      async () => messages.length,
      (n) => n === 2,
    );
    expect(messages).toEqual(['one', 'two']);
    expect(await sub.ping()).toBe('PONG');
  });

  it('client-side caching: a cached read is invalidated by another client’s write', async () => {
    const cached = await nodeRedis('alice', { clientSideCache: { ttl: 0, maxEntries: 0 } });
    const writer = await nodeRedis('alice');
    await writer.set('n3:cached', 'v1');
    expect(await cached.get('n3:cached')).toBe('v1');
    expect(await cached.get('n3:cached')).toBe('v1');
    expect(cached.clientSideCache!.stats().hitCount).toBe(1);
    await writer.set('n3:cached', 'v2');
    expect(
      await until(
        () => cached.get('n3:cached'),
        (v) => v === 'v2',
      ),
    ).toBe('v2');
    expect(cached.clientSideCache!.stats().hitCount).toBeGreaterThanOrEqual(1);
  });

  it('invalidate events name the key written (emitInvalidate)', async () => {
    const tracked = await nodeRedis('alice', { emitInvalidate: true });
    const keys: unknown[] = [];
    tracked.on('invalidate', (key: unknown) => keys.push(String(key)));
    await tracked.get('n3:inv');
    const writer = await nodeRedis('alice');
    await writer.set('n3:inv', 'x');
    await until(
      async () => keys.length,
      (n) => n > 0,
    );
    expect(keys).toEqual(['n3:inv']);
  });

  it('scripting as the roles allow: refused by default on standalone, run with allow.redisScripting', async () => {
    const plain = await nodeRedis('alice');
    await plain.hSet('n3:sh', { k: 'v' });
    const script = "redis.setresp(3); return redis.call('HGETALL', KEYS[1])";
    await expect(plain.eval(script, { keys: ['n3:sh'] })).rejects.toThrow(/allow\.redisScripting/);
    const allowed = await nodeRedis('alice', {}, scripting.port);
    expect(await allowed.sendCommand(['EVAL', script, '1', 'n3:sh'], TYPED)).toEqual(new Map([['k', 'v']]));
  });

  it('HELLO 2 downgrades the connection: replies are RESP2 again', async () => {
    const c = await nodeRedis('alice');
    await c.hSet('n3:h2', { a: '1' });
    expect(await c.sendCommand(['HGETALL', 'n3:h2'], TYPED)).toEqual(new Map([['a', '1']]));
    await c.sendCommand(['HELLO', '2']);
    expect(await c.sendCommand(['HGETALL', 'n3:h2'], TYPED)).toEqual(['a', '1']);
    expect(await c.sendCommand(['ZSCORE', 'n3:z', 'n'])).toBe('2.25');
  });
});

describe('redis-py, protocol=3', () => {
  it('sees RESP3 types, pushes between replies, tracking invalidations and HELLO 2', async () => {
    const p = f.people.alice;
    await expectRedisPyResp3({ port: f.agent.port, ca: f.caFile, cert: p.certFile, key: p.keyFile });
  });
});

describe('ioredis pinned to RESP2', () => {
  it('works as before: replies, pub/sub mode, HELLO 3 never sent', async () => {
    const tls = { ca: f.ca.certPem, cert: f.people.alice.certPem, key: f.people.alice.keyPem };
    const opts = {
      host: '127.0.0.1',
      port: f.agent.port,
      tls,
      protocol: 2,
      maxRetriesPerRequest: 0,
    } as const;
    const c = new Redis(opts);
    const sub = new Redis(opts);
    closers.push(
      () => c.disconnect(),
      () => sub.disconnect(),
    );
    await c.hset('io2:h', { a: '1' });
    expect(await c.hgetall('io2:h')).toEqual({ a: '1' });
    expect(await c.call('HGETALL', 'io2:h')).toEqual(['a', '1']);
    expect(await c.call('HELLO')).toEqual(expect.arrayContaining(['proto', 2]));
    const got = new Promise<string>((resolve) => sub.on('message', (_ch, m: string) => resolve(m)));
    await sub.subscribe('io2:ch');
    await c.publish('io2:ch', 'hi');
    expect(await got).toBe('hi');
  });
});
