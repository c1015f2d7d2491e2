// PlainSends reuses one object per command in flight: what a reused object sends and answers must be
// its new command's alone (no ASK target, retry state or session place left from the last one), and a
// session dispatching its next command from inside an answer must get a fresh send, not the one
// still answering.
import { describe, expect, it } from 'vitest';
import {
  type NodeConnection,
  NodeUnavailable,
  type ReplyTaker,
  Resp3RefusedError,
} from '../../../src/engines/redis/cluster/node-connection.js';
import { Plain, type PlainOwner, PlainSends } from '../../../src/engines/redis/cluster/plain.js';
import type { SendContext } from '../../../src/engines/redis/cluster/sender.js';
import { Topology } from '../../../src/engines/redis/cluster/topology.js';
import { RedisReplyError } from '../../../src/engines/redis/router.js';
import { createLogger } from '../../../src/log.js';

type Answer = string | 'refused-now';
const addr = (key: string) => ({ host: key.split(':')[0]!, port: Number(key.split(':')[1]) });

/** a:1 owns every slot, b:2 is a replica the shape lists (so an ASK to it is followed). */
function setup(scripts: Record<string, Answer[]>) {
  const topology = new Topology({ seeds: [], fetchShape: async () => shape });
  const shape = {
    shards: [{ slots: [[0, 16383]] as [number, number][], master: addr('a:1'), replicas: [addr('b:2')] }],
  };
  topology.apply(shape);
  const seen: string[] = [];
  const conn = (key: string) =>
    ({
      sendAt: (bytes: Buffer, from: number, to: number, t: ReplyTaker) => answer(key, bytes, from, to, t, ''),
      sendAskingAt: (bytes: Buffer, from: number, to: number, t: ReplyTaker) =>
        answer(key, bytes, from, to, t, 'ASKING+'),
    }) as unknown as NodeConnection;
  const answer = (key: string, bytes: Buffer, from: number, to: number, t: ReplyTaker, asking: string) => {
    seen.push(`${key} ${asking}${bytes.toString('latin1', from, to).split('\r\n')[4]}`);
    const a = scripts[key]!.shift() ?? '+OK\r\n';
    if (a === 'refused-now') {
      // A RESP3 refusal is final: answered before sendAt returns, as a dead connection answers.
      const why = new Resp3RefusedError(key, "ERR unknown command 'HELLO'");
      t.unavailable(new NodeUnavailable(why, false));
    } else {
      queueMicrotask(() => {
        const chunk = Buffer.from(`+x\r\n${a}`);
        t.replyAt(chunk, 4, chunk.length);
      });
    }
    return true;
  };
  const conns = new Map(['a:1', 'b:2'].map((k) => [k, conn(k)]));
  const ctx: SendContext = {
    topology,
    log: createLogger('test', 'silent'),
    retryBudgetMs: 50,
    anyNode: () => 0,
    pubsubHome: () => 0,
    refusedRedirect: () => undefined,
    rules: () => undefined,
  };
  const answers: string[] = [];
  const owner: PlainOwner & { then?: (seq: number) => void } = {
    answered(seq, n, reply, start, end) {
      const text =
        reply instanceof RedisReplyError ? `${reply.prefix}` : reply.toString('latin1', start, end).trim();
      answers.push(`${seq}/${n} ${text}`);
      owner.then?.(seq);
    },
  };
  const sends = new PlainSends(ctx, () => undefined, owner);
  const lane = (id: number) => conns.get(topology.entry(id).key)!;
  const send = (key: string, seq: number) => {
    const chunk = Buffer.from(`junk*2\r\n$3\r\nGET\r\n$${key.length}\r\n${key}\r\n`);
    return sends.send(chunk, 4, chunk.length, 100, Plain.Read, lane, seq, seq + 10);
  };
  const settled = (ms = 20) => new Promise((r) => setTimeout(r, ms));
  return { send, seen, answers, owner, settled };
}

describe('PlainSends', () => {
  it('a reused send keeps nothing of its last command: no ASK target, no retry clock', async () => {
    const busy = '-TRYAGAIN Multiple keys request during rehashing of slot\r\n';
    const s = setup({ 'a:1': [busy, '-ASK 100 b:2\r\n', busy, '$2\r\nv2\r\n'], 'b:2': ['$2\r\nv1\r\n'] });
    s.send('k1', 0);
    await s.settled(60); // past the retry budget since k1's first try: a clock left over would give up
    s.send('k2', 1);
    await s.settled(60);
    expect(s.seen).toEqual(['a:1 k1', 'a:1 k1', 'b:2 ASKING+k1', 'a:1 k2', 'a:1 k2']);
    expect(s.answers).toEqual(['0/10 $2\r\nv1', '1/11 $2\r\nv2']);
  });

  it('a next command dispatched from inside an answer gets its own send and place', async () => {
    const s = setup({ 'a:1': ['refused-now', '$1\r\nw\r\n'], 'b:2': [] });
    s.owner.then = (seq) => {
      if (seq === 0) s.send('k2', 1);
    };
    s.send('k1', 0);
    await s.settled();
    expect(s.seen).toEqual(['a:1 k1', 'a:1 k2']);
    expect(s.answers).toEqual(['0/10 ERR', '1/11 $1\r\nw']);
  });

  it('many commands in flight at once each answer their own place', async () => {
    const replies = Array.from({ length: 40 }, (_, i) => `$${String(i).length}\r\n${i}\r\n`);
    const s = setup({ 'a:1': [...replies], 'b:2': [] });
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 20; i++) s.send(`k${round * 20 + i}`, round * 20 + i);
      await s.settled();
    }
    expect(s.answers).toEqual(replies.map((r, i) => `${i}/${i + 10} ${r.trim()}`));
  });
});
