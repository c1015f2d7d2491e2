// Hung-node detection and blocking-command limits: pure helpers and the sweep over fake connections;
// askAny (a question any node can answer) over fake nodes that answer, refuse, fail or stay silent.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { blockingReplyLimitMs, blockingWaitMs } from '../../../src/engines/redis/cluster/blocking.js';
import {
  HEDGE_MS,
  HungNodeWatch,
  NodeTimeoutError,
  askAny,
} from '../../../src/engines/redis/cluster/hung-nodes.js';
import { DrawbridgeError } from '../../../src/errors.js';
import {
  type NodeConnection,
  Resp3RefusedError,
} from '../../../src/engines/redis/cluster/node-connection.js';
import type { RedisCommand } from '../../../src/engines/redis/parser.js';

const command = (line: string): RedisCommand => {
  const args = line.split(' ').map((a) => Buffer.from(a));
  return { name: line.split(' ', 1)[0]!.toLowerCase(), args } as RedisCommand;
};

describe('blockingWaitMs', () => {
  it.each([
    ['BLPOP q 5', 5000],
    ['BRPOP a b 0.25', 250],
    ['BLMOVE a b LEFT RIGHT 2', 2000],
    ['BRPOPLPUSH a b 1', 1000],
    ['BZPOPMIN z 0', 0],
    ['BLMPOP 3 2 a b LEFT', 3000],
    ['BZMPOP 0.5 1 z MIN', 500],
    ['XREAD COUNT 2 BLOCK 1500 STREAMS s 0', 1500],
    ['XREADGROUP GROUP g c BLOCK 0 STREAMS s >', 0],
    ['XREAD STREAMS block 0', undefined],
    ['BLPOP q soon', undefined],
    ['BLPOP q -1', undefined],
    ['GET k', undefined],
  ])('%s → %s', (line, ms) => expect(blockingWaitMs(command(line))).toBe(ms));
});

describe('blockingReplyLimitMs', () => {
  it.each([
    ['BLPOP q 5', 35_000],
    ['BLPOP q 0', 0],
    ['BLPOP q soon', 0],
    ['XREAD BLOCK 100 STREAMS s $', 30_100],
  ])('%s → %i', (line, ms) => expect(blockingReplyLimitMs(command(line), 30_000)).toBe(ms));
});

/** The parts of a NodeConnection the watch reads; `destroyed` records what it was closed with. */
function fakeConnection(inFlight: number) {
  const c = {
    label: '10.0.0.1:6379',
    closed: false,
    inFlight,
    readPaused: false,
    progress: 0,
    replyLimitMs: undefined as number | undefined,
    destroyed: undefined as unknown,
    destroy(err: unknown) {
      this.destroyed = err;
      this.closed = true;
    },
  };
  return c;
}

describe('HungNodeWatch', () => {
  // timeout 400 ms → a sweep every 100 ms: hung after 4 silent sweeps following the first sighting.
  const watchOf = (...conns: ReturnType<typeof fakeConnection>[]) =>
    new HungNodeWatch(400, () => conns as unknown as NodeConnection[]);

  it('closes a silent busy connection after the timeout, with NodeTimeoutError', () => {
    const c = fakeConnection(1);
    const w = watchOf(c);
    for (let i = 0; i < 4; i++) w.sweep();
    expect(c.destroyed).toBeUndefined();
    w.sweep();
    expect(c.destroyed).toBeInstanceOf(NodeTimeoutError);
    expect((c.destroyed as NodeTimeoutError).message).toMatch(
      /^cluster node 10.0.0.1:6379 sent nothing for 400 ms; the command timed out/,
    );
  });

  it('any data restarts the clock; idle and paused connections are not timed', () => {
    const busy = fakeConnection(3);
    const idle = fakeConnection(0);
    const paused = fakeConnection(1);
    paused.readPaused = true;
    const w = watchOf(busy, idle, paused);
    for (let i = 0; i < 20; i++) {
      if (i % 4 === 0) busy.progress++;
      w.sweep();
    }
    expect([busy, idle, paused].map((c) => c.destroyed)).toEqual([undefined, undefined, undefined]);
  });

  it("a connection's own limit overrides the timeout; 0 means none", () => {
    const blocking = fakeConnection(1);
    blocking.replyLimitMs = 1000;
    const forever = fakeConnection(1);
    forever.replyLimitMs = 0;
    const w = watchOf(blocking, forever);
    for (let i = 0; i < 10; i++) w.sweep();
    expect(blocking.destroyed).toBeUndefined();
    w.sweep();
    expect(blocking.destroyed).toBeInstanceOf(NodeTimeoutError);
    for (let i = 0; i < 100; i++) w.sweep();
    expect(forever.destroyed).toBeUndefined();
  });
});

describe('askAny', () => {
  beforeEach(() => void vi.useFakeTimers());
  afterEach(() => void vi.useRealTimers());

  type Behaviour = 'silent' | 'unreachable' | 'refused' | 'no-resp3' | string;
  /** Nodes 1..n behaving as told ('silent' never settles; any other string is the node's answer). */
  function ask(behaviour: Record<number, Behaviour>) {
    const asked: number[] = [];
    const outcome = { value: undefined as unknown, error: undefined as unknown };
    const nodes = Object.keys(behaviour).map(Number);
    void askAny(nodes, (node) => {
      asked.push(node);
      const b = behaviour[node]!;
      if (b === 'silent') return new Promise<string>(() => {});
      if (b === 'unreachable') {
        return Promise.reject(new DrawbridgeError('BACKEND_UNREACHABLE', `node ${node} is silent`));
      }
      if (b === 'refused') return Promise.reject(new DrawbridgeError('BACKEND_AUTH_FAILED', 'WRONGPASS'));
      if (b === 'no-resp3') return Promise.reject(new Resp3RefusedError(`n${node}`, 'ERR unknown command'));
      return Promise.resolve(b);
    }).then(
      (v) => (outcome.value = v),
      (e: unknown) => (outcome.error = e),
    );
    return { asked, outcome };
  }

  it('a silent node gets HEDGE_MS, then the next is asked too and its answer wins', async () => {
    const { asked, outcome } = ask({ 1: 'silent', 2: 'PONG from 2', 3: 'PONG from 3' });
    await vi.advanceTimersByTimeAsync(HEDGE_MS - 1);
    expect(asked).toEqual([1]);
    expect(outcome.value).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(asked).toEqual([1, 2]);
    expect(outcome.value).toBe('PONG from 2');
    await vi.advanceTimersByTimeAsync(10 * HEDGE_MS);
    expect(asked).toEqual([1, 2]);
  });

  it('an unreachable node (a hung one timed out) moves the question on at once', async () => {
    const { asked, outcome } = ask({ 1: 'unreachable', 2: 'unreachable', 3: 'PONG from 3' });
    await vi.advanceTimersByTimeAsync(0);
    expect(asked).toEqual([1, 2, 3]);
    expect(outcome.value).toBe('PONG from 3');
  });

  it('a refusal is what every node would say: it fails at once, nothing more is asked', async () => {
    const { asked, outcome } = ask({ 1: 'refused', 2: 'PONG from 2' });
    await vi.advanceTimersByTimeAsync(10 * HEDGE_MS);
    expect(asked).toEqual([1]);
    expect((outcome.error as DrawbridgeError).code).toBe('BACKEND_AUTH_FAILED');
  });

  it('a refused HELLO 3 fails it at once too (the session falls back to RESP2)', async () => {
    const { asked, outcome } = ask({ 1: 'no-resp3', 2: 'PONG from 2' });
    await vi.advanceTimersByTimeAsync(10 * HEDGE_MS);
    expect(asked).toEqual([1]);
    expect(outcome.error).toBeInstanceOf(Resp3RefusedError);
  });

  it('fails with the last error only when every node failed', async () => {
    const { asked, outcome } = ask({ 1: 'unreachable', 2: 'silent', 3: 'unreachable' });
    await vi.advanceTimersByTimeAsync(10 * HEDGE_MS);
    expect(asked).toEqual([1, 2, 3]);
    // Node 2 may still answer: nothing is decided while it is out.
    expect(outcome).toEqual({ value: undefined, error: undefined });
    const all = ask({ 1: 'unreachable', 2: 'unreachable' });
    await vi.advanceTimersByTimeAsync(0);
    expect((all.outcome.error as Error).message).toBe('node 2 is silent');
  });
});
