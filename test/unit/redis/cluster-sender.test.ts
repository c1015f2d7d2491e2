// RoutedSend against fake node connections: what each cluster answer makes the agent do next, and
// that no redirect ever reaches the client. Table-driven: a script of replies per node, in order.
import { describe, expect, it, vi } from 'vitest';
import { DrawbridgeError } from '../../../src/errors.js';
import { type NodeConnection, NodeUnavailable } from '../../../src/engines/redis/cluster/node-connection.js';
import { RoutedSend, type SendContext } from '../../../src/engines/redis/cluster/sender.js';
import { Topology } from '../../../src/engines/redis/cluster/topology.js';
import { RedisReplyError } from '../../../src/engines/redis/router.js';
import { createLogger } from '../../../src/log.js';

type Answer = string | 'lost' | 'refused';

/** Records what reaches each node and answers from a script. */
class FakeNode {
  readonly seen: string[] = [];
  constructor(
    readonly label: string,
    private readonly script: Answer[],
  ) {}
  conn(): NodeConnection {
    const answer = (h: (r: Buffer | NodeUnavailable) => void) => {
      const a = this.script.shift() ?? '+OK\r\n';
      const err = new DrawbridgeError('BACKEND_UNREACHABLE', `connection to ${this.label} closed`);
      queueMicrotask(() =>
        h(
          a === 'lost'
            ? new NodeUnavailable(err, true)
            : a === 'refused'
              ? new NodeUnavailable(err, false)
              : Buffer.from(a),
        ),
      );
    };
    return {
      send: (raw: Buffer, h: (r: Buffer | NodeUnavailable) => void) => {
        this.seen.push(raw.toString().split('\r\n')[2]!);
        answer(h);
        return true;
      },
      sendAsking: (raw: Buffer, h: (r: Buffer | NodeUnavailable) => void) => {
        this.seen.push(`ASKING+${raw.toString().split('\r\n')[2]}`);
        answer(h);
        return true;
      },
    } as unknown as NodeConnection;
  }
}

function setup(scripts: Record<string, Answer[]>) {
  const topology = new Topology({
    seeds: [],
    fetchShape: async () => ({
      shards: [{ slots: [[0, 16383]], master: { host: 'a', port: 1 }, replicas: [] }],
    }),
  });
  const nodes = new Map<number, FakeNode>();
  for (const [key, script] of Object.entries(scripts)) {
    const [host, port] = key.split(':');
    const id = topology.node({ host: host!, port: Number(port) }).id;
    nodes.set(id, new FakeNode(key, script));
  }
  topology.apply({ shards: [{ slots: [[0, 16383]], master: { host: 'a', port: 1 }, replicas: [] }] });
  const ctx: SendContext = {
    topology,
    log: createLogger('test', 'silent'),
    retryBudgetMs: 300,
    anyNode: () => 0,
    pubsubHome: () => 0,
  };
  const send = (idempotent = false) =>
    new Promise<string>((resolve) => {
      new RoutedSend(ctx, {
        raw: Buffer.from('*2\r\n$3\r\nGET\r\n$1\r\nk\r\n'),
        slot: 100,
        idempotent,
        lane: (id) => nodes.get(id)!.conn(),
        done: (r) => resolve(r instanceof RedisReplyError ? `${r.prefix} ${r.message}` : r.toString()),
      }).start();
    });
  return {
    topology,
    nodes,
    send,
    seen: (key: string) => [...nodes.values()].find((n) => n.label === key)!.seen,
  };
}

describe('RoutedSend', () => {
  it('MOVED: patches the slot at once and resends to the new owner', async () => {
    const s = setup({ 'a:1': ['-MOVED 100 b:2\r\n'], 'b:2': ['$1\r\nv\r\n'] });
    expect(await s.send()).toBe('$1\r\nv\r\n');
    expect(s.topology.entry(s.topology.ownerOf(100)).key).toBe('b:2');
    expect(s.seen('b:2')).toEqual(['GET']);
  });

  it('ASK: ASKING + command to the importing node, without changing the slot map', async () => {
    const s = setup({ 'a:1': ['-ASK 100 b:2\r\n'], 'b:2': ['$1\r\nv\r\n'] });
    expect(await s.send()).toBe('$1\r\nv\r\n');
    expect(s.seen('b:2')).toEqual(['ASKING+GET']);
    expect(s.topology.entry(s.topology.ownerOf(100)).key).toBe('a:1');
  });

  it.each([
    '-TRYAGAIN Multiple keys request during rehashing of slot\r\n',
    '-CLUSTERDOWN The cluster is down\r\n',
  ])('retries %j with backoff, then answers', async (busy) => {
    const s = setup({ 'a:1': [busy, busy, '$1\r\nv\r\n'] });
    expect(await s.send()).toBe('$1\r\nv\r\n');
    expect(s.seen('a:1')).toHaveLength(3);
  });

  it('gives up after the retry budget with the last cluster error', async () => {
    const s = setup({ 'a:1': Array<Answer>(100).fill('-CLUSTERDOWN The cluster is down\r\n') });
    expect(await s.send()).toBe('-CLUSTERDOWN The cluster is down\r\n');
  });

  it('a node that refuses connections: not sent, so retried', async () => {
    const s = setup({ 'a:1': ['refused', '$1\r\nv\r\n'] });
    expect(await s.send()).toBe('$1\r\nv\r\n');
  });

  it('lost in flight: a read is retried, a write is reported as possibly applied', async () => {
    expect(await setup({ 'a:1': ['lost', '$1\r\nv\r\n'] }).send(true)).toBe('$1\r\nv\r\n');
    expect(await setup({ 'a:1': ['lost', '+OK\r\n'] }).send(false)).toMatch(
      /^ERR .*may or may not have been applied/,
    );
  });

  it('stops after 16 redirects', async () => {
    const loop = Array<Answer>(20).fill('-MOVED 100 a:1\r\n');
    const s = setup({ 'a:1': loop });
    vi.spyOn(s.topology, 'refresh').mockResolvedValue();
    expect(await s.send()).toMatch(/^ERR too many cluster redirections/);
  });

  it('passes ordinary errors through untouched', async () => {
    expect(await setup({ 'a:1': ['-WRONGTYPE Operation against a key\r\n'] }).send()).toBe(
      '-WRONGTYPE Operation against a key\r\n',
    );
  });
});
