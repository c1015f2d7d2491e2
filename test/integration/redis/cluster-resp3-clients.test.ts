// Real RESP3 client libraries against the real 6-node TLS+ACL Redis Cluster through one agent
// endpoint, each knowing nothing of the cluster: node-redis v5 with RESP: 3 sees RESP3 types from
// every master, merged fan-out replies, pub/sub and sharded pub/sub pushes while the same connection
// runs commands, and client-side caching invalidated from whichever master holds the key; redis-py
// with protocol=3 plays the very scenario it plays against one server (resp3-py.ts).
import type { RedisClientOptions } from 'redis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TYPED, nodeRedisAt } from '../../support/redis.js';
import type { NodeView } from '../../support/redis-cluster.js';
import { type ClusterFixture, type ClusterPerson, keyOn, startClusterFixture } from './cluster-fixture.js';
import { expectRedisPyResp3 } from './resp3-py.js';

let f: ClusterFixture;
let masters: NodeView[];
const closers: (() => unknown)[] = [];

beforeAll(async () => {
  f = await startClusterFixture();
  masters = await f.cluster.masters();
});

afterAll(async () => {
  for (const close of closers) await Promise.resolve(close()).catch(() => undefined);
  await f?.stop();
});

/** A connected node-redis client (RESP3, no cluster mode) through the agent as `person`. */
const nodeRedis = (person: ClusterPerson, opts: Partial<RedisClientOptions> = {}) =>
  nodeRedisAt(f.agent.port, f.tls(person), closers, opts);

const perMaster = (prefix: string) => masters.map((m) => keyOn(m, prefix));

async function until(check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('node-redis v5 with RESP: 3, one endpoint for the whole cluster', () => {
  it('maps, sets and doubles from every master; cross-slot MGET in key order', async () => {
    const c = await nodeRedis('alice');
    expect(((await c.sendCommand(['HELLO'])) as Record<string, unknown>).proto).toBe(3);
    for (const k of perMaster('nr:')) {
      await c.hSet(`{${k}}h`, { a: '1', b: '2' });
      await c.sAdd(`{${k}}s`, ['x', 'y']);
      await c.zAdd(`{${k}}z`, [
        { score: 1.5, value: 'm' },
        { score: 2.25, value: 'n' },
      ]);
      expect(await c.sendCommand(['HGETALL', `{${k}}h`], TYPED)).toEqual(
        new Map([
          ['a', '1'],
          ['b', '2'],
        ]),
      );
      expect(await c.sendCommand(['SMEMBERS', `{${k}}s`], TYPED)).toEqual(new Set(['x', 'y']));
      expect(await c.zScore(`{${k}}z`, 'n')).toBe(2.25);
      expect(await c.zRangeWithScores(`{${k}}z`, 0, -1)).toEqual([
        { value: 'm', score: 1.5 },
        { value: 'n', score: 2.25 },
      ]);
    }
    const keys = perMaster('nr-mget:');
    await c.mSet(keys.map((k) => [k, `v-${k}`] as [string, string]));
    expect(await c.mGet([keys[2]!, 'nr-mget:none', keys[0]!, keys[1]!])).toEqual([
      `v-${keys[2]}`,
      null,
      `v-${keys[0]}`,
      `v-${keys[1]}`,
    ]);
  });

  it('fan-out commands answer for the whole cluster', async () => {
    const c = await nodeRedis('ops');
    const keys = perMaster('nr-fan:');
    await c.mSet(keys.map((k) => [k, '1'] as [string, string]));
    const direct = await Promise.all(masters.map((m) => f.cluster.cli(m.port, ['DBSIZE'])));
    expect(await c.dbSize()).toBe(direct.reduce((n, s) => n + Number(s.trim()), 0));
    expect((await c.keys('nr-fan:*')).sort()).toEqual([...keys].sort());
    const info = await c.info('keyspace');
    for (const m of masters) expect(info).toContain(`# Node 127.0.0.1:${m.port}`);
    expect(await c.configGet('maxmemory-policy')).toEqual({ 'maxmemory-policy': 'noeviction' });
  });

  it('pub/sub and sharded pub/sub pushes arrive while the same connection runs commands', async () => {
    const sub = await nodeRedis('alice');
    const pub = await nodeRedis('alice');
    const got: string[] = [];
    const shards = perMaster('nr-sch:');
    await sub.subscribe('nr-news', (m, ch) => got.push(`${ch}:${m}`));
    await sub.sSubscribe(shards, (m, ch) => got.push(`s ${ch}:${m}`));
    const key = keyOn(masters[2]!, 'nr-during:');
    await sub.set(key, 'yes');
    await pub.publish('nr-news', 'one');
    for (const ch of shards) expect(await pub.sPublish(ch, 'sh')).toBe(1);
    expect(await sub.get(key)).toBe('yes');
    await until(() => got.length === 1 + shards.length);
    expect(got.sort()).toEqual(['nr-news:one', ...shards.map((ch) => `s ${ch}:sh`)].sort());
    expect(await sub.ping()).toBe('PONG');
  });

  it('client-side caching: reads cached, invalidated by writes on whichever master holds each key', async () => {
    const cached = await nodeRedis('alice', { clientSideCache: { ttl: 0, maxEntries: 0 } });
    const writer = await nodeRedis('alice');
    const keys = perMaster('nr-csc:');
    for (const k of keys) await writer.set(k, 'v1');
    for (const k of keys) expect(await cached.get(k)).toBe('v1');
    for (const k of keys) expect(await cached.get(k)).toBe('v1');
    expect(cached.clientSideCache!.stats().hitCount).toBe(keys.length);
    for (const k of keys) await writer.set(k, 'v2');
    await until(async () => (await Promise.all(keys.map((k) => cached.get(k)))).every((v) => v === 'v2'));
    expect(cached.clientSideCache!.stats().missCount).toBeGreaterThanOrEqual(2 * keys.length);
  });
});

describe('redis-py with protocol=3, one endpoint for the whole cluster', () => {
  it('sees what it sees from one server: RESP3 types, pushes between replies, tracking, HELLO 2', async () => {
    const args = f.tlsArgs('alice');
    const file = (flag: string) => args[args.indexOf(flag) + 1]!;
    await expectRedisPyResp3({ port: f.agent.port, ca: f.caFile, cert: file('--cert'), key: file('--key') });
  });
});
