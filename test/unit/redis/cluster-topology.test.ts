// Slot map and topology: CLUSTER SHARDS/SLOTS parsing, MOVED patches, epoch-guarded refreshes.
import { describe, expect, it, vi } from 'vitest';
import { HEDGE_MS } from '../../../src/engines/redis/cluster/hung-nodes.js';
import { RespError, type RespValue } from '../../../src/engines/redis/reply-parser.js';
import {
  type ClusterShape,
  parseAddress,
  parseClusterShards,
  parseClusterSlots,
} from '../../../src/engines/redis/cluster/shape.js';
import { NO_NODE, Topology } from '../../../src/engines/redis/cluster/topology.js';

const b = (s: string) => Buffer.from(s);
const node = (fields: Record<string, string | number>): RespValue =>
  Object.entries(fields).flatMap(([k, v]) => [b(k), typeof v === 'number' ? v : b(v)]);

// The shape Redis 7.0 answers over TLS with --port 0 (no plaintext `port` field).
const shards: RespValue = [
  [b('slots'), [0, 5460], b('nodes'), [
    node({ id: 'a', 'tls-port': 7000, ip: '127.0.0.1', endpoint: '127.0.0.1', role: 'master', health: 'online' }),
    node({ id: 'd', 'tls-port': 7003, ip: '127.0.0.1', endpoint: '127.0.0.1', role: 'replica', health: 'online' }),
  ]],
  [b('slots'), [5461, 10922], b('nodes'), [
    node({ id: 'b', 'tls-port': 7001, ip: '127.0.0.1', endpoint: '127.0.0.1', role: 'master', health: 'failed' }),
    node({ id: 'e', 'tls-port': 7004, ip: '127.0.0.1', endpoint: '127.0.0.1', role: 'replica', health: 'loading' }),
  ]],
  [b('slots'), [10923, 16000, 16001, 16383], b('nodes'), [
    node({ id: 'c', port: 6379, 'tls-port': 7002, ip: '10.0.0.3', endpoint: 'node-c.example', role: 'master', health: 'online' }),
  ]],
  [b('slots'), [], b('nodes'), [node({ id: 'x', port: 9, ip: '10.0.0.9', endpoint: '?', role: 'master', health: 'online' })]],
]; // prettier-ignore

describe('parseClusterShards', () => {
  it('takes TLS ports, preferred endpoints, healthy replicas; skips slotless shards', () => {
    expect(parseClusterShards(shards, true)).toEqual({
      shards: [
        {
          slots: [[0, 5460]],
          master: { host: '127.0.0.1', port: 7000 },
          replicas: [{ host: '127.0.0.1', port: 7003 }],
        },
        { slots: [[5461, 10922]], master: { host: '127.0.0.1', port: 7001 }, replicas: [] },
        {
          slots: [
            [10923, 16000],
            [16001, 16383],
          ],
          master: { host: 'node-c.example', port: 7002 },
          replicas: [],
        },
      ],
      unassigned: [{ host: '10.0.0.9', port: 9 }],
    });
  });

  it('takes plaintext ports when the agent talks plaintext', () => {
    expect(parseClusterShards(shards, false).shards[2]!.master).toEqual({
      host: 'node-c.example',
      port: 6379,
    });
  });

  it('reports error replies', () => {
    expect(() => parseClusterShards(new RespError('NOPERM no'), true)).toThrow('NOPERM');
  });
});

describe('parseClusterSlots', () => {
  it('groups ranges by master', () => {
    const reply: RespValue = [
      [0, 100, [b('10.0.0.1'), 6379, b('a')], [b('10.0.0.2'), 6379, b('d')]],
      [101, 16383, [b('10.0.0.3'), 6380, b('c')]],
      [200, 300, [b('10.0.0.1'), 6379, b('a')]],
    ];
    expect(parseClusterSlots(reply).shards).toEqual([
      { slots: [[0, 100], [200, 300]], master: { host: '10.0.0.1', port: 6379 }, replicas: [{ host: '10.0.0.2', port: 6379 }] },
      { slots: [[101, 16383]], master: { host: '10.0.0.3', port: 6380 }, replicas: [] },
    ]); // prettier-ignore
  });
});

describe('parseAddress', () => {
  it.each([
    ['127.0.0.1:6379', { host: '127.0.0.1', port: 6379 }],
    ['::1:7000', { host: '::1', port: 7000 }],
    ['[::1]:7000', { host: '::1', port: 7000 }],
    ['host', undefined],
    ['host:0', undefined],
    ['host:99999', undefined],
  ])('%s', (text, want) => expect(parseAddress(text)).toEqual(want));
});

const A = { host: 'a', port: 1 };
const B = { host: 'b', port: 2 };
const C = { host: 'c', port: 3 };
const shape = (...s: [typeof A, number, number][]): ClusterShape => ({
  shards: s.map(([master, start, end]) => ({ master, slots: [[start, end]], replicas: [] })),
});

function deferred<T>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

describe('Topology', () => {
  it('maps slots, orders masters by lowest slot, bumps the epoch per change', async () => {
    const t = new Topology({ seeds: [A], fetchShape: async () => shape([B, 0, 8000], [A, 8001, 16383]) });
    expect(t.ownerOf(0)).toBe(NO_NODE);
    await t.refresh();
    expect(t.entry(t.ownerOf(0)).key).toBe('b:2');
    expect(t.entry(t.ownerOf(16383)).key).toBe('a:1');
    expect(t.masters().map((id) => t.entry(id).key)).toEqual(['b:2', 'a:1']);
    const epoch = t.epoch;
    await t.refresh(); // same shape: no change
    expect(t.epoch).toBe(epoch);
  });

  it('MOVED patches at once and schedules one refresh', async () => {
    let fetches = 0;
    const t = new Topology({
      seeds: [A],
      fetchShape: async () => {
        fetches++;
        return { shards: [{ master: A, slots: [[0, 16383]], replicas: [C] }] };
      },
    });
    await t.refresh();
    const before = t.epoch;
    const id = t.named(C)!;
    t.moved(42, id);
    expect(t.ownerOf(42)).toBe(id);
    expect(t.epoch).toBe(before + 1);
    t.moved(43, id);
    t.moved(44, id);
    await t.refresh();
    expect(fetches).toBeLessThanOrEqual(3); // the first, then at most two for the burst
  });

  it('a refresh that started before a MOVED does not undo it', async () => {
    const gate = deferred<ClusterShape>();
    const t = new Topology({ seeds: [A, C], fetchShape: () => gate.promise });
    const running = t.refresh();
    const c = t.named(C)!;
    t.moved(100, c); // newer than what the pending refresh will say
    gate.resolve(shape([A, 0, 16383]));
    await running;
    expect(t.ownerOf(100)).toBe(c);
    expect(t.entry(t.ownerOf(101)).key).toBe('a:1');
  });

  it('tries the next node when one fails and reports the last error', async () => {
    const errors: unknown[] = [];
    const asked: string[] = [];
    const t = new Topology({
      seeds: [A, B],
      fetchShape: async (n) => {
        asked.push(n.key);
        if (n.key === 'a:1') throw new Error('refused');
        return shape([B, 0, 16383]);
      },
      onRefreshError: (e) => errors.push(e),
    });
    await t.refresh();
    expect(asked).toEqual(['a:1', 'b:2']);
    expect(errors).toEqual([]);
    expect(t.entry(t.ownerOf(5)).key).toBe('b:2');
  });

  it('a silent node holds a refresh up for HEDGE_MS, not its timeout; an error moves on at once', async () => {
    vi.useFakeTimers();
    try {
      const asked: string[] = [];
      const t = new Topology({
        seeds: [A, B, C],
        fetchShape: (n) => {
          asked.push(n.key);
          if (n.key === 'a:1') return new Promise<ClusterShape>(() => {}); // SIGSTOPped: never answers
          if (n.key === 'b:2') return Promise.reject(new Error('NOPERM'));
          return Promise.resolve(shape([C, 0, 16383]));
        },
      });
      let done = false;
      const running = t.refresh().then(() => (done = true));
      await vi.advanceTimersByTimeAsync(HEDGE_MS - 1);
      expect(asked).toEqual(['a:1']);
      expect(done).toBe(false);
      await vi.advanceTimersByTimeAsync(1);
      expect(done).toBe(true);
      expect(asked).toEqual(['a:1', 'b:2', 'c:3']);
      await running;
      expect(t.entry(t.ownerOf(0)).key).toBe('c:3');
    } finally {
      vi.useRealTimers();
    }
  });

  it('names seeds and every node a shape lists (masters, replicas, slotless); nothing else', async () => {
    const D = { host: 'd', port: 4 };
    const t = new Topology({
      seeds: [A],
      fetchShape: async () => ({
        shards: [{ master: B, slots: [[0, 16383]], replicas: [C] }],
        unassigned: [D],
      }),
    });
    expect(t.named(A)).toBeDefined();
    expect(t.named(B)).toBeUndefined();
    await t.refresh();
    for (const n of [A, B, C, D]) expect(t.named(n)).toBeDefined();
    expect(t.named({ host: 'evil', port: 6379 })).toBeUndefined();
    expect(t.named({ host: 'b', port: 3 })).toBeUndefined();
  });

  it('confirm: refreshes asking the redirecting node first; names what the new shape lists', async () => {
    const asked: string[] = [];
    let grown = false;
    const t = new Topology({
      seeds: [A],
      fetchShape: async (n) => {
        asked.push(n.key);
        return grown
          ? { shards: [{ master: A, slots: [[0, 8000]], replicas: [C] }, { master: B, slots: [[8001, 16383]], replicas: [] }] }
          : { shards: [{ master: A, slots: [[0, 16383]], replicas: [C] }] };
      }, // prettier-ignore
    });
    await t.refresh();
    grown = true;
    asked.length = 0;
    const b = await t.confirm(B, t.named(C)!);
    expect(asked).toEqual(['c:3']);
    expect(b).toBeDefined();
    expect(t.entry(t.ownerOf(9000)).key).toBe('b:2');
  });

  it('confirm: an address no shape names stays unknown, and is never asked anything', async () => {
    const asked: string[] = [];
    const t = new Topology({
      seeds: [A],
      fetchShape: async (n) => {
        asked.push(n.key);
        return shape([A, 0, 16383]);
      },
    });
    await t.refresh();
    const epoch = t.epoch;
    expect(await t.confirm({ host: '127.0.0.1', port: 1 }, t.named(A)!)).toBeUndefined();
    expect(asked).toEqual(['a:1', 'a:1']);
    expect(t.epoch).toBe(epoch);
    expect(t.allNodes().map((id) => t.entry(id).key)).toEqual(['a:1']);
  });
});
