// RESP3 through one agent endpoint in front of the real 6-node TLS+ACL Redis Cluster, read as exact
// frames: replies in their RESP3 types from every master, RESP2 and RESP3 sessions of one database
// user never sharing a node connection, fan-out merges, pub/sub and sharded pub/sub pushes
// interleaved with replies on one connection, HELLO 2 going back, CLIENT TRACKING. Real RESP3
// client libraries are in cluster-resp3-clients.test.ts.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  RespDouble,
  RespMap,
  RespPush,
  RespSet,
  type RespValue,
  RespVerbatim,
  decodeReply,
} from '../../../src/engines/redis/reply-parser.js';
import type { NodeView } from '../../support/redis-cluster.js';
import { type ClusterFixture, keyOn, startClusterFixture } from './cluster-fixture.js';
import { Wire } from './cluster-wire.js';

let f: ClusterFixture;
let masters: NodeView[];

beforeAll(async () => {
  f = await startClusterFixture();
  masters = await f.cluster.masters();
});

afterAll(async () => {
  await f?.stop();
});

const value = (frame: Buffer): RespValue => decodeReply(frame);
const texts = (v: RespValue): string[] => (Array.isArray(v) ? v.map((x) => String(x)) : []);

/** One key per master, so every check below covers every node. */
const perMaster = (prefix: string) => masters.map((m) => keyOn(m, prefix));

describe('RESP3 sessions on a Redis Cluster through one agent endpoint', () => {
  // First in this file: the agent has no node connection yet, so a RESP2 one would be this session's.
  it('a session that connects with HELLO 3 opens node connections in RESP3 only', async () => {
    const w = await Wire.open(f, 'alice', 3);
    await w.call(...perMaster('first:').map((k) => ['GET', k]));
    const lists = await Promise.all(masters.map((m) => f.cluster.cli(m.port, ['CLIENT', 'LIST'])));
    const agents = lists.flatMap((l) => l.split('\n')).filter((l) => / user=default /.test(l));
    expect(agents.length).toBeGreaterThanOrEqual(masters.length);
    expect(agents.filter((l) => !/ resp=3\s*$/.test(l))).toEqual([]);
    w.close();
  });

  it('HELLO 3: hashes, sets, sorted sets and nulls come back in their RESP3 types from every master', async () => {
    const w = await Wire.open(f, 'alice');
    const [hello] = await w.call(['HELLO', '3', 'SETNAME', 'r3']);
    const info = value(hello!) as RespMap;
    expect(info).toBeInstanceOf(RespMap);
    expect(info.get('proto')).toBe(3);
    for (const k of perMaster('types:')) {
      const [hset, hgetall, sadd, smembers, zadd, zscore, missing] = await w.call(
        ['HSET', `{${k}}h`, 'f1', 'v1', 'f2', 'v2'],
        ['HGETALL', `{${k}}h`],
        ['SADD', `{${k}}s`, 'a', 'b'],
        ['SMEMBERS', `{${k}}s`],
        ['ZADD', `{${k}}z`, '1.5', 'm'],
        ['ZSCORE', `{${k}}z`, 'm'],
        ['GET', `{${k}}missing`],
      );
      expect(String(hset)).toBe(':2\r\n');
      const map = value(hgetall!) as RespMap;
      expect(map).toBeInstanceOf(RespMap);
      expect(map.entries.map(([a, b]) => `${String(a)}=${String(b)}`).sort()).toEqual(['f1=v1', 'f2=v2']);
      expect(String(sadd)).toBe(':2\r\n');
      expect(value(smembers!)).toBeInstanceOf(RespSet);
      expect(texts((value(smembers!) as RespSet).items).sort()).toEqual(['a', 'b']);
      expect(String(zadd)).toBe(':1\r\n');
      expect(value(zscore!)).toEqual(new RespDouble(1.5));
      expect(String(missing)).toBe('_\r\n');
    }
    // A cross-slot MGET is split per master and merged in key order, nulls in RESP3.
    const keys = perMaster('mget:');
    await w.call(['MSET', ...keys.flatMap((k) => [k, `v-${k}`])]);
    const [mget] = await w.call(['MGET', keys[0]!, 'mget:none', ...keys.slice(1)]);
    expect(String(mget)).toContain('_\r\n');
    expect((value(mget!) as RespValue[]).map((v) => (v === null ? null : String(v)))).toEqual([
      `v-${keys[0]}`,
      null,
      ...keys.slice(1).map((k) => `v-${k}`),
    ]);
    const [name] = await w.call(['CLIENT', 'GETNAME']);
    expect(String(name)).toBe('$2\r\nr3\r\n');
    w.close();
  });

  it('RESP2 and RESP3 sessions of one database user never share a node connection', async () => {
    const [r3, r2] = [await Wire.open(f, 'alice', 3), await Wire.open(f, 'alice')];
    const keys = perMaster('mix:');
    await r2.call(...keys.map((k) => ['HSET', k, 'f', 'v', 'g', 'w']));
    const reads = Array.from({ length: 300 }, (_, i) => ['HGETALL', keys[i % keys.length]!]);
    // Both pipelines in flight at once, over the same nodes.
    r3.send(...reads);
    r2.send(...reads);
    const [got3, got2] = await Promise.all([r3.take(reads.length), r2.take(reads.length)]);
    expect(new Set(got3.map((b) => b.toString('latin1', 0, 3)))).toEqual(new Set(['%2\r']));
    expect(new Set(got2.map((b) => b.toString('latin1', 0, 3)))).toEqual(new Set(['*4\r']));
    r3.close();
    r2.close();
  });

  it('fan-out commands merge RESP3 replies: sums, verbatim INFO per node, maps per node, set-shaped keys', async () => {
    const w = await Wire.open(f, 'ops', 3);
    const keys = perMaster('fan:');
    await w.call(['MSET', ...keys.flatMap((k) => [k, '1'])]);
    const [dbsize, keysReply, info, stats, config, exists] = await w.call(
      ['DBSIZE'],
      ['KEYS', 'fan:*'],
      ['INFO', 'keyspace'],
      ['MEMORY', 'STATS'],
      ['CONFIG', 'GET', 'maxmemory-policy'],
      ['SCRIPT', 'EXISTS', 'ffffffffffffffffffffffffffffffffffffffff'],
    );
    const direct = await Promise.all(masters.map((m) => f.cluster.cli(m.port, ['DBSIZE'])));
    expect(String(dbsize)).toBe(`:${direct.reduce((n, s) => n + Number(s.trim()), 0)}\r\n`);
    expect(texts(value(keysReply!)).sort()).toEqual([...keys].sort());
    // One verbatim text, each master's part under its own heading.
    const text = value(info!) as RespVerbatim;
    expect(text).toBeInstanceOf(RespVerbatim);
    expect(text.format).toBe('txt');
    for (const m of masters) expect(text.text.toString()).toContain(`# Node 127.0.0.1:${m.port}\r\n`);
    // MEMORY STATS: [node, map] per master, the maps still maps.
    const pairs = value(stats!) as RespValue[][];
    expect(pairs).toHaveLength(masters.length);
    for (const [node, map] of pairs) {
      expect(String(node)).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(map).toBeInstanceOf(RespMap);
      expect((map as RespMap).get('keys.count')).toBeTypeOf('number');
    }
    expect(value(config!)).toEqual(
      new RespMap([[Buffer.from('maxmemory-policy'), Buffer.from('noeviction')]]),
    );
    expect(String(exists)).toBe('*1\r\n:0\r\n');
    w.close();
  });

  it('pub/sub pushes interleave with replies on one connection; shard messages come from the owning node', async () => {
    const w = await Wire.open(f, 'alice', 3);
    const shards = perMaster('sch:');
    const [confirm] = await w.call(['SUBSCRIBE', 'news']);
    expect(value(confirm!)).toEqual(new RespPush([Buffer.from('subscribe'), Buffer.from('news'), 1]));
    w.send(['SSUBSCRIBE', ...shards]);
    const sconfirms = (await w.take(shards.length)).map(value);
    expect(sconfirms.map((p) => texts((p as RespPush).items))).toEqual(
      shards.map((s, i) => ['ssubscribe', s, String(i + 1)]),
    );
    // Subscribed, the session still runs any command (RESP3), and hears messages in between.
    const key = keyOn(masters[1]!, 'sub:');
    const [set, ping] = await w.call(['SET', key, 'v'], ['PING']);
    expect([String(set), String(ping)]).toEqual(['+OK\r\n', '+PONG\r\n']);
    const pub = await Wire.open(f, 'alice');
    // Shard channels live on their owners: PUBSUB asks every master (RESP2 and RESP3 alike).
    const [numsub2, channels2] = await pub.call(
      ['PUBSUB', 'SHARDNUMSUB', ...shards],
      ['PUBSUB', 'SHARDCHANNELS', 'sch:*'],
    );
    expect(texts(value(numsub2!))).toEqual(shards.flatMap((s) => [s, '1']));
    expect(texts(value(channels2!)).sort()).toEqual([...shards].sort());
    const [numsub3] = await w.call(['PUBSUB', 'SHARDNUMSUB', shards[2]!, 'sch:none']);
    expect(String(numsub3)).toBe(
      `*4\r\n$${shards[2]!.length}\r\n${shards[2]}\r\n:1\r\n$8\r\nsch:none\r\n:0\r\n`,
    );
    await pub.call(['PUBLISH', 'news', 'hello']);
    for (const [i, m] of masters.entries()) {
      // SPUBLISH straight on the owner: the push can only come through the link to that node.
      expect((await f.cluster.cli(m.port, ['SPUBLISH', shards[i]!, `from-${m.port}`])).trim()).toBe('1');
    }
    w.send(['GET', key]);
    const frames = await w.take(masters.length + 2);
    const pushes = frames.filter((b) => b[0] === 0x3e).map((b) => texts((value(b) as RespPush).items));
    const replies = frames.filter((b) => b[0] !== 0x3e).map(String);
    expect(replies).toEqual(['$1\r\nv\r\n']);
    expect(pushes).toEqual([
      ['message', 'news', 'hello'],
      ...masters.map((m, i) => ['smessage', shards[i]!, `from-${m.port}`]),
    ]);
    const [unsub] = await w.call(['UNSUBSCRIBE', 'news']);
    // Channels and patterns only, as Redis counts them; the shard channels are counted apart.
    expect(texts((value(unsub!) as RespPush).items)).toEqual(['unsubscribe', 'news', '0']);
    w.close();
    pub.close();
  });

  it('a person without @pubsub is refused SUBSCRIBE/SSUBSCRIBE in RESP3 as in RESP2, naming the rule', async () => {
    for (const hello of ['2', '3']) {
      const w = await Wire.open(f, 'rita');
      const [login, sub, ssub] = await w.call(
        ['HELLO', hello, 'AUTH', 'reader', 'ignored'],
        ['SUBSCRIBE', 'news'],
        ['SSUBSCRIBE', 'sch:0'],
      );
      expect(login![0]).toBe(hello === '3' ? 0x25 : 0x2a); // a map, or RESP2's flat array
      expect(String(sub)).toMatch(/^-NOPERM .*role "readonly"/);
      expect(String(ssub)).toMatch(/^-NOPERM .*role "readonly"/);
      w.close();
    }
  });

  it('HELLO 2 goes back to RESP2: flat replies, and a subscription made in RESP3 gets RESP2 messages', async () => {
    const w = await Wire.open(f, 'alice', 3);
    const key = keyOn(masters[2]!, 'down:');
    await w.call(['HSET', key, 'f', 'v']);
    expect(String((await w.call(['HGETALL', key]))[0])).toBe('%1\r\n$1\r\nf\r\n$1\r\nv\r\n');
    await w.call(['SUBSCRIBE', 'down']);
    const [hello] = await w.call(['HELLO', '2']);
    expect(value(hello!)).toBeInstanceOf(Array);
    expect(texts(value(hello!))).toContain('proto');
    const pub = await Wire.open(f, 'alice');
    await pub.call(['PUBLISH', 'down', 'm']);
    expect(String((await w.take(1))[0])).toBe('*3\r\n$7\r\nmessage\r\n$4\r\ndown\r\n$1\r\nm\r\n');
    const [unsub] = await w.call(['UNSUBSCRIBE', 'down']);
    expect(String(unsub)).toBe('*3\r\n$11\r\nunsubscribe\r\n$4\r\ndown\r\n:0\r\n');
    expect(String((await w.call(['HGETALL', key]))[0])).toBe('*2\r\n$1\r\nf\r\n$1\r\nv\r\n');
    w.close();
    pub.close();
  });

  it('CLIENT TRACKING: invalidations from every master the client read from, and none after OFF', async () => {
    const w = await Wire.open(f, 'alice', 3);
    const writer = await Wire.open(f, 'alice');
    const keys = perMaster('track:');
    await writer.call(...keys.map((k) => ['SET', k, 'v1']));
    expect(String((await w.call(['CLIENT', 'TRACKING', 'ON']))[0])).toBe('+OK\r\n');
    expect((await w.call(...keys.map((k) => ['GET', k]))).map(String)).toEqual(
      keys.map(() => '$2\r\nv1\r\n'),
    );
    await writer.call(...keys.map((k) => ['SET', k, 'v2']));
    const pushes = (await w.take(keys.length)).map((b) => texts((value(b) as RespPush).items[1] ?? null));
    expect(pushes.flat().sort()).toEqual([...keys].sort());
    // The session's protocol stays while its own tracking connections exist.
    expect(String((await w.call(['HELLO', '2']))[0])).toMatch(
      /^-ERR HELLO cannot switch protocols while .*CLIENT TRACKING OFF/,
    );
    expect(String((await w.call(['CLIENT', 'TRACKING', 'OFF']))[0])).toBe('+OK\r\n');
    await w.call(...keys.map((k) => ['GET', k]));
    await writer.call(...keys.map((k) => ['SET', k, 'v3']));
    await new Promise((r) => setTimeout(r, 100));
    const [ping] = await w.call(['PING']);
    expect(String(ping)).toBe('+PONG\r\n'); // nothing came before it
    w.close();
    writer.close();
  });

  it('CLIENT TRACKING: reads inside MULTI/EXEC and blocking reads are tracked on every master', async () => {
    const w = await Wire.open(f, 'alice', 3);
    const writer = await Wire.open(f, 'alice');
    const keys = perMaster('tx-track:');
    const streams = perMaster('xr-track:');
    const waited = keyOn(masters[1]!, 'xr-wait:');
    await writer.call(
      ...keys.map((k) => ['SET', k, 'v1']),
      ...streams.map((s) => ['XADD', s, '1-1', 'f', 'v']),
    );
    expect(String((await w.call(['CLIENT', 'TRACKING', 'ON']))[0])).toBe('+OK\r\n');
    for (const k of keys) {
      const replies = (await w.call(['MULTI'], ['GET', k], ['EXEC'])).map(String);
      expect(replies).toEqual(['+OK\r\n', '+QUEUED\r\n', '*1\r\n$2\r\nv1\r\n']);
    }
    for (const s of streams) {
      expect(String((await w.call(['XREAD', 'BLOCK', '1000', 'STREAMS', s, '0']))[0])).toContain('1-1');
    }
    // A read that blocked, then returned what another client added.
    w.send(['XREAD', 'BLOCK', '5000', 'STREAMS', waited, '$']);
    await new Promise((r) => setTimeout(r, 200));
    await writer.call(['XADD', waited, '5-1', 'f', 'v']);
    expect(String((await w.take(1))[0])).toContain('5-1');
    await writer.call(
      ...keys.map((k) => ['SET', k, 'v2']),
      ...[...streams, waited].map((s) => ['XADD', s, '*', 'f', 'w']),
    );
    const want = [...keys, ...streams, waited];
    const pushes = (await w.take(want.length)).map((b) => texts((value(b) as RespPush).items[1] ?? null));
    expect(pushes.flat().sort()).toEqual(want.sort());
    w.close();
    writer.close();
  });

  it('CLIENT TRACKING BCAST on every master; OPTIN tracks only reads after CLIENT CACHING yes', async () => {
    const bcast = await Wire.open(f, 'alice', 3);
    const optin = await Wire.open(f, 'alice', 3);
    const writer = await Wire.open(f, 'alice');
    const keys = perMaster('bc:');
    expect(String((await bcast.call(['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'bc:']))[0])).toBe(
      '+OK\r\n',
    );
    expect(String((await optin.call(['CLIENT', 'TRACKING', 'ON', 'OPTIN']))[0])).toBe('+OK\r\n');
    await writer.call(...keys.map((k) => ['SET', k, '1']));
    const [untracked, caching, tracked] = await optin.call(
      ['GET', keys[0]!],
      ['CLIENT', 'CACHING', 'yes'],
      ['GET', keys[1]!],
    );
    expect([String(untracked), String(caching), String(tracked)]).toEqual([
      '$1\r\n1\r\n',
      '+OK\r\n',
      '$1\r\n1\r\n',
    ]);
    expect(String((await optin.call(['CLIENT', 'CACHING', 'no']))[0])).toMatch(
      /^-ERR CLIENT CACHING NO is only valid .*OPTOUT/,
    );
    await writer.call(...keys.map((k) => ['SET', k, '2']));
    // BCAST: every key under the prefix, written on any master, never read by this session.
    const broadcast = (await bcast.take(keys.length)).map((b) =>
      texts((value(b) as RespPush).items[1] ?? null),
    );
    expect(broadcast.flat().sort()).toEqual([...keys].sort());
    // OPTIN: only the key read after CLIENT CACHING yes.
    const [invalidated] = await optin.take(1);
    expect(texts((value(invalidated!) as RespPush).items[1] ?? null)).toEqual([keys[1]]);
    await new Promise((r) => setTimeout(r, 100));
    expect(String((await optin.call(['PING']))[0])).toBe('+PONG\r\n');
    bcast.close();
    optin.close();
    writer.close();
  });
});
