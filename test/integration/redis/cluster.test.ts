// A 6-node Redis Cluster (TLS + ACL) behind one agent, used by clients that only speak plain Redis:
// redis-cli without -c, ioredis without cluster mode, redis-benchmark without --cluster. Everything a
// single Redis does must work; nothing cluster-specific (MOVED, ASK, CROSSSLOT for splittable
// commands) may reach the client. One cluster serves every test in this file.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '../../../src/engines/redis/cluster/key-slot.js';
import { exec } from '../../support/redis.js';
import type { NodeView } from '../../support/redis-cluster.js';
import { type ClusterFixture, clusterDocs, startClusterFixture } from './cluster-fixture.js';

let f: ClusterFixture;
let masters: NodeView[];

beforeAll(async () => {
  f = await startClusterFixture();
  masters = await f.cluster.masters();
});

afterAll(async () => {
  await f?.stop();
});

const lines = (out: string) => out.split('\n').filter((l) => l !== '');

/** A key with `prefix` whose slot is served by each master, one per master. */
function keyPerMaster(prefix: string): string[] {
  return masters.map((m) => {
    for (let i = 0; ; i++) {
      const key = `${prefix}${i}`;
      const slot = keySlot(Buffer.from(key));
      if (m.slots.some(([a, b]) => slot >= a && slot <= b)) return key;
    }
  });
}

/** Sum of DBSIZE asked of each master directly. */
async function directDbsize(): Promise<number> {
  const sizes = await Promise.all(masters.map((m) => f.cluster.cli(m.port, ['DBSIZE'])));
  return sizes.reduce((n, s) => n + Number(s.trim()), 0);
}

describe('Redis Cluster through one agent endpoint', () => {
  it('routes by slot: a plain redis-cli reaches keys on every master and never sees MOVED', async () => {
    const keys = keyPerMaster('route:');
    const out = await f.cli('alice', [], keys.map((k) => `SET ${k} v-${k}\nGET ${k}\n`).join(''));
    expect(lines(out)).toEqual(keys.flatMap((k) => ['OK', `v-${k}`]));
    // Each key really lives on the master owning its slot.
    for (const [i, m] of masters.entries()) {
      expect((await f.cluster.cli(m.port, ['GET', keys[i]!])).trim()).toBe(`v-${keys[i]}`);
    }
  });

  it('carries large values and deep pipelines across the masters', async () => {
    const c = f.ioredis('alice');
    const big = Buffer.alloc(32 * 1024 * 1024, 'x');
    const [k1, k2] = keyPerMaster('big:');
    expect(await c.set(k1!, big)).toBe('OK');
    expect((await c.getBuffer(k1!))?.equals(big)).toBe(true);
    const p = c.pipeline();
    for (let i = 0; i < 5000; i++) p.incr(i % 2 ? k2! : `deep:${i % 97}`);
    const results = (await p.exec())!;
    expect(results.every(([err]) => err === null)).toBe(true);
    expect(await c.get(k2!)).toBe('2500');
  });

  it('splits cross-slot MGET/MSET/DEL/UNLINK/EXISTS/TOUCH per slot and merges in order', async () => {
    const keys = Array.from({ length: 50 }, (_, i) => `split:${i}`);
    const c = f.ioredis('alice');
    expect(await c.mset(Object.fromEntries(keys.map((k) => [k, `v${k}`])))).toBe('OK');
    expect(await c.mget(...keys, 'split:missing')).toEqual([...keys.map((k) => `v${k}`), null]);
    expect(await c.exists(...keys, keys[0]!)).toBe(51); // duplicates count, as in Redis
    expect(await c.touch(...keys.slice(0, 10))).toBe(10);
    expect(await c.del(...keys.slice(0, 20))).toBe(20);
    expect(await c.unlink(...keys.slice(20), 'split:missing')).toBe(30);
    expect(await c.exists(...keys)).toBe(0);
  });

  it('answers other cross-slot commands with CROSSSLOT naming the fix; same-slot keys just work', async () => {
    const c = f.ioredis('alice');
    const [a, b] = keyPerMaster('cs:');
    await expect(c.sunion(a!, b!)).rejects.toThrow(/^CROSSSLOT .*hash tag/);
    await expect(c.msetnx(a!, '1', b!, '2')).rejects.toThrow(/^CROSSSLOT/);
    await c.sadd('{team}:x', 'a', 'b');
    await c.sadd('{team}:y', 'b', 'c');
    expect((await c.sunion('{team}:x', '{team}:y')).sort()).toEqual(['a', 'b', 'c']);
  });

  it('fans out DBSIZE, KEYS, FLUSHDB, PING and INFO (labelled per node)', async () => {
    const ops = f.ioredis('ops');
    await ops.flushdb();
    expect(await ops.dbsize()).toBe(0);
    await ops.mset(Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`fan:${i}`, i])));
    expect(await ops.dbsize()).toBe(await directDbsize());
    expect(await ops.dbsize()).toBe(300);
    expect((await ops.keys('fan:*')).length).toBe(300);
    expect(await ops.ping()).toBe('PONG');
    const info = await ops.info('keyspace');
    expect(info.match(/^# Node /gm)).toHaveLength(3);
    expect(info).toMatch(/db0:keys=\d+/);
    await ops.flushall();
    expect(await directDbsize()).toBe(0);
  });

  it('SCAN through one cursor returns every one of 10,000 keys exactly once', async () => {
    const ops = f.ioredis('ops');
    await ops.flushall();
    const n = 10_000;
    const p = ops.pipeline();
    for (let i = 0; i < n; i++) p.set(`scan:${i}`, '1');
    await p.exec();
    // redis-cli --scan drives the cursor the way any client does.
    const seen = lines(await f.cli('ops', ['--scan', '--pattern', 'scan:*']));
    expect(seen.length).toBe(n);
    expect(new Set(seen).size).toBe(n);
    // ioredis' scanStream, with TYPE and COUNT passed through.
    const viaStream = new Set<string>();
    for await (const batch of ops.scanStream({ match: 'scan:*', count: 1000, type: 'string' })) {
      for (const k of batch as string[]) viaStream.add(k);
    }
    expect(viaStream.size).toBe(n);
    await expect(ops.scan('12345678901234567890')).rejects.toThrow(/invalid cursor/);
    await ops.flushall();
  });

  it('runs MULTI/EXEC on the node of the first key; WATCH works; a foreign slot aborts safely', async () => {
    const a = f.ioredis('alice');
    expect(await a.multi().ping().set('{tx}:a', '1').incr('{tx}:a').get('{tx}:a').exec()).toEqual([
      [null, 'PONG'],
      [null, 'OK'],
      [null, 2],
      [null, '2'],
    ]);
    // WATCH, read, then MULTI/EXEC: the optimistic-locking loop clients write.
    await a.watch('{tx}:a');
    const seen = Number(await a.get('{tx}:a'));
    expect(
      await a
        .multi()
        .set('{tx}:a', String(seen + 1))
        .exec(),
    ).toEqual([[null, 'OK']]);
    expect(await a.get('{tx}:a')).toBe('3');
    // WATCH pins too: a change by another session makes EXEC return null.
    const b = f.ioredis('alice');
    await a.watch('{tx}:a');
    await b.set('{tx}:a', 'changed');
    expect(await a.multi().set('{tx}:a', 'mine').exec()).toBeNull();
    expect(await a.get('{tx}:a')).toBe('changed');
    // A key of another slot inside MULTI: CROSSSLOT, EXEC aborts, nothing of it ran.
    const [other] = keyPerMaster('foreign:').filter(
      (k) => keySlot(Buffer.from(k)) !== keySlot(Buffer.from('tx')),
    );
    const out = await f.cli(
      'alice',
      [],
      `MULTI\nSET {tx}:a aborted\nSET ${other} x\nEXEC\nGET {tx}:a\nEXISTS ${other}\n`,
    );
    expect(lines(out)).toEqual([
      'OK',
      'QUEUED',
      expect.stringMatching(/^CROSSSLOT .*transaction/),
      expect.stringMatching(/^EXECABORT/),
      'changed',
      '0',
    ]);
    // RESET drops a pinned transaction without running it.
    const reset = await f.cli('alice', [], 'MULTI\nSET {tx}:a reset\nRESET\nGET {tx}:a\n');
    expect(lines(reset)).toEqual(['OK', 'QUEUED', 'RESET', 'changed']);
    // The session is usable afterwards, and so is a keyless transaction.
    expect(await a.multi().ping().echo('x').exec()).toEqual([
      [null, 'PONG'],
      [null, 'x'],
    ]);
  });

  it('routes EVAL/EVALSHA/FCALL by their keys, SCRIPT LOAD to every node', async () => {
    // ops may run every command, so scripts too (alice's are refused: test/integration/hostile).
    const c = f.ioredis('ops');
    const script = "return redis.call('SET', KEYS[1], ARGV[1])";
    const keys = keyPerMaster('lua:');
    for (const k of keys) expect(await c.eval(script, 1, k, 'e')).toBe('OK');
    const sha = (await c.script('LOAD', script)) as string;
    expect(await c.script('EXISTS', sha)).toEqual([1]);
    for (const k of keys) expect(await c.evalsha(sha, 1, k, 'sha')).toBe('OK');
    expect(await c.mget(...keys)).toEqual(keys.map(() => 'sha'));
    await expect(c.eval(script, 2, keys[0]!, keys[1]!, 'x')).rejects.toThrow(/^CROSSSLOT/);
    const lib =
      "#!lua name=dblib\nredis.register_function('dbl', function(keys) return redis.call('INCRBY', keys[1], 2) end)";
    await c.function('LOAD', 'REPLACE', lib);
    for (const k of keyPerMaster('fn:')) expect(await c.fcall('dbl', 1, k)).toBe(2);
  });

  // ioredis 6 speaks RESP3 unless told 2: both, since RESP2's subscribed mode is a different path.
  it.each([2, 3] as const)(
    'SUBSCRIBE/PSUBSCRIBE hear PUBLISH from any node; SSUBSCRIBE/SPUBLISH follow the channel slot (RESP%i)',
    async (protocol) => {
      const sub = f.ioredis('alice', { protocol });
      const pub = f.ioredis('alice', { protocol });
      const got: string[] = [];
      sub.on('message', (ch: string, msg: string) => got.push(`${ch}:${msg}`));
      sub.on('pmessage', (_p: string, ch: string, msg: string) => got.push(`p ${ch}:${msg}`));
      sub.on('smessage', (ch: string, msg: string) => got.push(`s ${ch}:${msg}`));
      const channels = keyPerMaster(`chan${protocol}:`);
      expect(await sub.subscribe(...channels)).toBe(3);
      expect(await sub.psubscribe(`pat${protocol}:*`)).toBe(4);
      const shards = keyPerMaster(`shard${protocol}:`);
      expect(await sub.ssubscribe(...shards)).toBe(3);
      for (const ch of channels) expect(await pub.publish(ch, 'hi')).toBeGreaterThanOrEqual(1);
      await pub.publish(`pat${protocol}:x`, 'p');
      for (const ch of shards) expect(await pub.spublish(ch, 'sh')).toBe(1);
      await until(() => got.length === 7);
      expect(got.sort()).toEqual(
        [...channels.map((c) => `${c}:hi`), `p pat${protocol}:x:p`, ...shards.map((c) => `s ${c}:sh`)].sort(),
      );
      expect(await sub.unsubscribe(...channels)).toBe(1); // the pattern remains
      expect(await sub.sunsubscribe(shards[0]!)).toBe(2);
    },
  );

  it('blocking commands wait on their own connection without holding up other sessions', async () => {
    const waiter = f.ioredis('alice');
    const other = f.ioredis('alice');
    const [q, s] = keyPerMaster('block:');
    const order: string[] = [];
    const popped = waiter.blpop(q!, 5).then((r) => (order.push('blpop'), r));
    // From 0-0, not $: the XADD below may reach the node before this new connection's XREAD does.
    const read = f.ioredis('alice').xread('BLOCK', 5000, 'STREAMS', s!, '0-0');
    await other.get(q!).then(() => order.push('get')); // shares the node connection BLPOP does not hold
    await other.rpush(q!, 'job');
    await other.xadd(s!, '*', 'f', 'v');
    expect(await popped).toEqual([q, 'job']);
    expect((await read)?.[0]?.[0]).toBe(s);
    expect(order).toEqual(['get', 'blpop']);
  });

  it('enforces per-person rules before routing, and logs in to every node as the database user', async () => {
    await f.ioredis('alice').mset(Object.fromEntries(keyPerMaster('rules:').map((k) => [k, 'v'])));
    const reads = keyPerMaster('rules:')
      .map((k) => `GET ${k}\n`)
      .join('');
    const out = await f.cli(
      'rita',
      ['--user', 'reader', '--pass', 'ignored', '--no-auth-warning'],
      `${reads}SET rules:x 1\n`,
    );
    expect(lines(out)).toEqual(['v', 'v', 'v', expect.stringMatching(/^NOPERM .*role "readonly"/)]);
    expect(await f.cli('alice', ['FLUSHALL'])).toMatch(/^NOPERM/);
    // The backend connections of rita's session are logged in as reader on each master.
    for (const m of masters) {
      expect(await f.cluster.cli(m.port, ['CLIENT', 'LIST'])).toMatch(/user=reader/);
    }
  });

  it('serves redis-benchmark (non-cluster) with no errors', async () => {
    const out = await exec('redis-benchmark', [
      ...f.tlsArgs('alice'),
      '-h', '127.0.0.1', '-p', String(f.agent.port),
      '-t', 'set,get,mset', '-n', '3000', '-c', '10', '-P', '8', '-q',
    ]); // prettier-ignore
    expect(out).toMatch(/SET: [\d.]+ requests per second/);
    expect(out).toMatch(/MSET \(10 keys\): [\d.]+ requests per second/);
    expect(out).not.toMatch(/error|MOVED|CROSSSLOT/i);
  });

  it('agents in one process share no cluster connections: stopping one leaves the other serving', async () => {
    const c = f.ioredis('alice');
    const [key] = keyPerMaster('own:');
    expect(await c.set(key!, 'before')).toBe('OK');
    const other = await startClusterFixture(f.cluster);
    try {
      expect((await other.cli('alice', ['SET', key!, 'other'])).trim()).toBe('OK');
    } finally {
      await other.stop();
    }
    // The same session, no reconnect: its node connections belong to its own agent.
    expect(await c.get(key!)).toBe('other');
    expect(await c.set(key!, 'after')).toBe('OK');
  });

  it('a DB number in spec.uri is refused with the fix named (Redis Cluster has DB 0 only)', async () => {
    // Without ?mode=cluster the schema cannot tell; the node's own refusal of SELECT is explained.
    const seed = masters[0]!.port;
    const withDb = await startClusterFixture(f.cluster, (cluster) =>
      clusterDocs(cluster).map((d) => {
        const doc = d as { kind: string; spec: object };
        return doc.kind === 'Database'
          ? { ...doc, spec: { ...doc.spec, uri: `rediss://127.0.0.1:${seed}/3` } }
          : d;
      }),
    );
    try {
      const out = await withDb.cli('alice', ['PING']).catch((err: Error) => err.message);
      expect(out).toMatch(
        /ERR SELECT is not allowed in cluster mode.*hint: Redis Cluster has only DB 0: remove "\/3" from spec\.uri/,
      );
    } finally {
      await withDb.stop();
    }
  });
});

async function until(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
