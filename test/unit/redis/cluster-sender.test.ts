// RoutedSend against fake node connections: what each cluster answer makes the agent do next, and
// that no redirect ever reaches the client. Table-driven: a script of replies per node, in order.
import { describe, expect, it, vi } from 'vitest';
import { runsCode } from '../../../src/authz/commands.js';
import type { CommandRules } from '../../../src/engines/redis/cluster/command-rules.js';
import { DrawbridgeError } from '../../../src/errors.js';
import {
  type NodeConnection,
  NodeUnavailable,
  type ReplyTaker,
  Resp3RefusedError,
} from '../../../src/engines/redis/cluster/node-connection.js';
import { scriptCall } from '../../../src/engines/redis/cluster/redirect.js';
import { RoutedSend, type SendContext } from '../../../src/engines/redis/cluster/sender.js';
import { Topology } from '../../../src/engines/redis/cluster/topology.js';
import { RedisReplyError } from '../../../src/engines/redis/router.js';
import { encodeCommand } from '../../../src/engines/redis/serializer.js';
import { createLogger } from '../../../src/log.js';

type Answer = string | 'lost' | 'refused' | 'no-resp3';

/** What the backend's COMMAND says matters here: Redis 7's own, plus a module's @scripting TFCALL. */
const rules = (name: string) =>
  ({ runsCode: runsCode({ name, categories: name === 'tfcall' ? ['scripting'] : [] }) }) as CommandRules;

/** Records what reaches each node and answers from a script. */
class FakeNode {
  readonly seen: string[] = [];
  constructor(
    readonly label: string,
    private readonly script: Answer[],
  ) {}
  conn(): NodeConnection {
    const answer = (t: ReplyTaker) => {
      const a = this.script.shift() ?? '+OK\r\n';
      const err = new DrawbridgeError('BACKEND_UNREACHABLE', `connection to ${this.label} closed`);
      queueMicrotask(() => {
        if (a === 'lost') t.unavailable(new NodeUnavailable(err, true));
        else if (a === 'refused') t.unavailable(new NodeUnavailable(err, false));
        else if (a === 'no-resp3') {
          t.unavailable(
            new NodeUnavailable(new Resp3RefusedError(this.label, "ERR unknown command 'HELLO'"), true),
          );
        } else {
          // The reply in place inside a larger chunk, as a node connection hands it over.
          const chunk = Buffer.from(`+x\r\n${a}`);
          t.replyAt(chunk, 4, chunk.length);
        }
      });
    };
    const command = (bytes: Buffer, from: number, to: number) => bytes.toString('latin1', from, to);
    return {
      sendAt: (bytes: Buffer, from: number, to: number, t: ReplyTaker) => {
        this.seen.push(command(bytes, from, to).split('\r\n')[2]!);
        answer(t);
        return true;
      },
      sendAskingAt: (bytes: Buffer, from: number, to: number, t: ReplyTaker) => {
        this.seen.push(`ASKING+${command(bytes, from, to).split('\r\n')[2]}`);
        answer(t);
        return true;
      },
    } as unknown as NodeConnection;
  }
}

const GET = Buffer.from('*2\r\n$3\r\nGET\r\n$1\r\nk\r\n');
const addr = (key: string) => ({ host: key.split(':')[0]!, port: Number(key.split(':')[1]) });

/**
 * a:1 owns every slot. `named`: the other nodes the cluster's shape lists (as replicas; default: every
 * scripted node); `later`: nodes only refreshes list. Unlisted scripted nodes catch any dial.
 */
function setup(scripts: Record<string, Answer[]>, opts: { named?: string[]; later?: string[] } = {}) {
  const named = opts.named ?? Object.keys(scripts).filter((k) => k !== 'a:1');
  const shapeOf = (replicas: string[]) => ({
    shards: [
      { slots: [[0, 16383]] as [number, number][], master: addr('a:1'), replicas: replicas.map(addr) },
    ],
  });
  const fetched: string[] = [];
  const topology = new Topology({
    seeds: [],
    fetchShape: async (n) => {
      fetched.push(n.key);
      return shapeOf([...named, ...(opts.later ?? [])]);
    },
  });
  topology.apply(shapeOf(named));
  const nodes = new Map(Object.entries(scripts).map(([key, script]) => [key, new FakeNode(key, script)]));
  const refused: unknown[][] = [];
  const dialled: string[] = [];
  const ctx: SendContext = {
    topology,
    log: createLogger('test', 'silent'),
    retryBudgetMs: 300,
    anyNode: () => 0,
    pubsubHome: () => 0,
    refusedRedirect: (...args) => void refused.push(args),
    rules,
  };
  const send = (idempotent = false, raw: Buffer = GET) =>
    new Promise<string>((resolve) => {
      new RoutedSend(ctx, {
        raw,
        slot: 100,
        idempotent,
        lane: (id) => {
          dialled.push(topology.entry(id).key);
          return nodes.get(topology.entry(id).key)!.conn();
        },
        done: (r) => resolve(r instanceof RedisReplyError ? `${r.prefix} ${r.message}` : r.toString()),
      }).start();
    });
  return {
    topology,
    send,
    fetched,
    refused,
    dialled,
    seen: (key: string) => nodes.get(key)!.seen,
    owner: () => topology.entry(topology.ownerOf(100)).key,
  };
}

describe('RoutedSend', () => {
  it('MOVED: patches the slot at once and resends to the new owner', async () => {
    const s = setup({ 'a:1': ['-MOVED 100 b:2\r\n'], 'b:2': ['$1\r\nv\r\n'] });
    expect(await s.send()).toBe('$1\r\nv\r\n');
    expect(s.owner()).toBe('b:2');
    expect(s.seen('b:2')).toEqual(['GET']);
  });

  it('ASK: ASKING + command to the importing node, without changing the slot map', async () => {
    const s = setup({ 'a:1': ['-ASK 100 b:2\r\n'], 'b:2': ['$1\r\nv\r\n'] });
    expect(await s.send()).toBe('$1\r\nv\r\n');
    expect(s.seen('b:2')).toEqual(['ASKING+GET']);
    expect(s.owner()).toBe('a:1');
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

  it('MOVED to a node the shape does not list yet: refreshes, asking the redirecting node first, then follows', async () => {
    const s = setup({ 'a:1': ['-MOVED 100 b:2\r\n'], 'b:2': ['$1\r\nv\r\n'] }, { named: [], later: ['b:2'] });
    expect(await s.send()).toBe('$1\r\nv\r\n');
    expect(s.fetched[0]).toBe('a:1');
    expect(s.seen('b:2')).toEqual(['GET']);
    expect(s.owner()).toBe('b:2');
    expect(s.refused).toEqual([]);
  });

  it.each(['MOVED', 'ASK'])(
    '%s to an address no shape lists: refused, never dialled, routing kept, counted',
    async (kind) => {
      const s = setup({ 'a:1': [`-${kind} 100 evil:9\r\n`], 'evil:9': ['+OK\r\n'] }, { named: [] });
      expect(await s.send()).toMatch(/^TRYAGAIN .*evil:9.*connects only to nodes the cluster confirms/);
      expect(s.dialled).toEqual(['a:1']);
      expect(s.seen('evil:9')).toEqual([]);
      expect(s.fetched.length).toBeGreaterThan(0);
      expect(s.owner()).toBe('a:1');
      expect(s.topology.named(addr('evil:9'))).toBeUndefined();
      expect(s.refused).toEqual([
        ['unconfirmed', { kind: kind.toLowerCase(), slot: 100, target: 'evil:9', from: 'a:1' }],
      ]);
    },
  );

  it.each([
    ['EVAL', 'MOVED 100 evil:9'],
    ['evalsha', 'ASK 100 evil:9'],
    ['EVAL_RO', 'MOVED 100 b:2'],
    ['EVALSHA_RO', 'ASK 100 b:2'],
    ['FCALL', 'MOVED 100 b:2'],
    ['fcall_ro', 'MOVED 100 evil:9'],
  ])('%s answering -%s: passed to the client verbatim; not followed, not re-run', async (command, text) => {
    const s = setup({ 'a:1': [`-${text}\r\n`], 'b:2': [], 'evil:9': [] }, { named: ['b:2'] });
    const raw = encodeCommand([command, 'return 1', '1', 'k']);
    expect(await s.send(true, raw)).toBe(`-${text}\r\n`);
    expect(s.dialled).toEqual(['a:1']);
    expect(s.seen('a:1')).toEqual([command]);
    expect(s.owner()).toBe('a:1');
    expect(s.fetched).toEqual([]);
    expect(s.refused).toEqual([
      ['script', { kind: text.startsWith('MOVED') ? 'moved' : 'ask', command: command.toLowerCase() }],
    ]);
  });

  // A script can write, then return any error text: a retry would run it (and its writes) again
  // while the audit shows one command. Real ones (resharding, failover) reach the client too.
  it.each([
    ['EVAL', '-TRYAGAIN x'],
    ['evalsha', '-CLUSTERDOWN The cluster is down'],
    ['EVAL_RO', '-LOADING Redis is loading the dataset in memory'],
    ['EVALSHA_RO', '-TRYAGAIN Multiple keys request during rehashing of slot'],
    ['FCALL', '-CLUSTERDOWN Hash slot not served'],
    ['fcall_ro', '-LOADING x'],
    ['FCALL', '-MASTERDOWN Link with MASTER is down'],
    ['TFCALL', '-TRYAGAIN made up in JavaScript'],
    ['EVAL', '-ERR user_script:1: boom'],
  ])('%s answering %j: passed to the client at once, sent exactly once', async (command, text) => {
    const busy = `${text}\r\n`;
    const s = setup({ 'a:1': Array<Answer>(100).fill(busy) });
    vi.spyOn(s.topology, 'refresh');
    const started = Date.now();
    expect(await s.send(true, encodeCommand([command, 'return 1', '1', 'k']))).toBe(busy);
    expect(Date.now() - started).toBeLessThan(100); // the budget is 300 ms, the first backoff 10 ms
    expect(s.seen('a:1')).toEqual([command]);
    expect(s.topology.refresh).not.toHaveBeenCalled();
    const kind = /^-(TRYAGAIN|CLUSTERDOWN|LOADING)/.test(text)
      ? [['script', { kind: 'retry', command: command.toLowerCase() }]]
      : [];
    expect(s.refused).toEqual(kind);
  });

  // RESP3 connections may carry blob errors (`!len text`): the same words get the same treatment.
  const blob = (text: string) => `!${Buffer.byteLength(text)}\r\n${text}\r\n`;

  it('a blob-error MOVED (RESP3) to a listed node is followed like a simple one', async () => {
    const s = setup({ 'a:1': [blob('MOVED 100 b:2')], 'b:2': [',1.5\r\n'] });
    expect(await s.send()).toBe(',1.5\r\n');
    expect(s.owner()).toBe('b:2');
  });

  it('a blob-error ASK to an address no shape lists: refused, never dialled', async () => {
    const s = setup({ 'a:1': [blob('ASK 100 evil:9')], 'evil:9': ['+OK\r\n'] }, { named: [] });
    expect(await s.send()).toMatch(/^TRYAGAIN .*evil:9/);
    expect(s.dialled).toEqual(['a:1']);
    expect(s.seen('evil:9')).toEqual([]);
  });

  it.each(['MOVED 100 b:2', 'ASK 100 evil:9', 'TRYAGAIN made up'])(
    'a script answering the blob error %j: passed on verbatim, not followed, not re-run',
    async (text) => {
      const s = setup(
        { 'a:1': Array<Answer>(5).fill(blob(text)), 'b:2': [], 'evil:9': [] },
        { named: ['b:2'] },
      );
      expect(await s.send(true, encodeCommand(['FCALL', 'f', '1', 'k']))).toBe(blob(text));
      expect(s.dialled).toEqual(['a:1']);
      expect(s.seen('a:1')).toEqual(['FCALL']);
      expect(s.refused).toHaveLength(1);
    },
  );

  it('a node refusing HELLO 3 on a RESP3 connection: the error at once, never retried', async () => {
    const s = setup({ 'a:1': ['no-resp3', '+OK\r\n'] });
    expect(await s.send(true)).toMatch(/^ERR cluster node a:1 refused HELLO 3: .*hint: RESP3 needs Redis 6/);
    expect(s.seen('a:1')).toEqual(['GET']);
  });

  it('a script the node never received (connection refused) is still retried: it cannot have run', async () => {
    const s = setup({ 'a:1': ['refused', ':1\r\n'] });
    expect(await s.send(false, encodeCommand(['EVAL', 'return 1', '0']))).toBe(':1\r\n');
    expect(s.seen('a:1')).toEqual(['EVAL', 'EVAL']); // the first attempt's connect failed
  });

  it('a write lost in flight is not re-run, script or not', async () => {
    const s = setup({ 'a:1': ['lost', ':1\r\n'] });
    expect(await s.send(false, encodeCommand(['FCALL', 'bump', '1', 'k']))).toMatch(
      /^ERR .*may or may not have been applied/,
    );
    expect(s.seen('a:1')).toEqual(['FCALL']);
  });
});

describe('scriptCall', () => {
  it.each([
    ['EVAL', 'eval'],
    ['evalsha', 'evalsha'],
    ['Eval_Ro', 'eval_ro'],
    ['EVALSHA_RO', 'evalsha_ro'],
    ['FCALL', 'fcall'],
    ['FCALL_RO', 'fcall_ro'],
    ['GET', undefined],
    ['EVALX', undefined],
    ['FUNCTION', undefined],
    ['SCRIPT', undefined],
    ['TFCALL', 'tfcall'],
  ])('%s', (name, want) =>
    expect(scriptCall(encodeCommand([name, 'x']), { rules } as unknown as SendContext)).toBe(want),
  );
});
