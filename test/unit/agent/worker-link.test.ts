// A worker's connection-slot request to its primary: answered, it resolves with the count; unanswered,
// it fails after TAKE_TIMEOUT_MS with an error naming the fix, and a late answer gives its slot back.
// In cluster: the state from the primary (the first one starts the agent, each later one follows in
// order) and TokenReviews through it.
import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, expect, it, vi } from 'vitest';
import type { StateSnapshot } from '../../../src/agent/state.js';
import { type ToPrimary, type ToWorker, toWire } from '../../../src/agent/workers/protocol.js';
import { TAKE_TIMEOUT_MS, WorkerLink } from '../../../src/agent/workers/worker.js';

class FakePrimary extends EventEmitter {
  connected = true;
  readonly sent: ToPrimary[] = [];
  send(msg: ToPrimary): boolean {
    this.sent.push(msg);
    return true;
  }
  answer(msg: ToWorker): void {
    this.emit('message', msg);
  }
}

let primary: FakePrimary;
let link: WorkerLink;
beforeEach(() => {
  vi.useFakeTimers();
  primary = new FakePrimary();
  link = new WorkerLink(primary);
});
afterEach(() => vi.useRealTimers());

it('resolves with what the primary counted', async () => {
  const taken = link.take('alice', 3);
  expect(primary.sent).toEqual([{ t: 'take', id: 0, key: 'alice', cap: 3 }]);
  primary.answer({ t: 'taken', id: 0, held: 2 });
  await expect(taken).resolves.toBe(2);
});

it('fails after the timeout with an error naming the fix, and gives back a slot answered late', async () => {
  const taken = link.take('alice', 3);
  const outcome = taken.catch((err: unknown) => err);
  vi.advanceTimersByTime(TAKE_TIMEOUT_MS - 1);
  primary.answer({ t: 'answered', id: 99, handled: false });
  vi.advanceTimersByTime(1);
  expect(await outcome).toMatchObject({
    code: 'AGENT_UNRESPONSIVE',
    message: "the agent's primary process did not count this connection within 5s",
    hint: expect.stringContaining('raise its CPU limit or lower spec.agent.workers') as string,
  });
  // The primary counted it after all: the worker releases it, once.
  primary.answer({ t: 'taken', id: 0, held: 1 });
  primary.answer({ t: 'taken', id: 0, held: 1 });
  expect(primary.sent.filter((m) => m.t === 'release')).toEqual([{ t: 'release', key: 'alice' }]);
});

it('gives nothing back when the late answer found the limit reached (no slot was taken)', async () => {
  const outcome = link.take(null, 3).catch((err: unknown) => err);
  vi.advanceTimersByTime(TAKE_TIMEOUT_MS);
  expect(await outcome).toMatchObject({ code: 'AGENT_UNRESPONSIVE' });
  primary.answer({ t: 'taken', id: 0, held: 3 });
  expect(primary.sent.filter((m) => m.t === 'release')).toEqual([]);
});

const snapshot = (n: number): StateSnapshot =>
  ({ database: { n }, roles: [], users: [], secrets: new Map([['pw', { alice: `pw-${n}` }]]) }) as never;

it('starts from the state the primary sends when asked, then applies every later one in order', async () => {
  const source = link.clusterState();
  expect(primary.sent).toEqual([{ t: 'subscribe' }]);
  primary.answer({ t: 'state', state: toWire(snapshot(1)) });
  const { initial, onUpdate } = await source;
  expect(initial).toEqual(snapshot(1));
  const seen: StateSnapshot[] = [];
  onUpdate((next) => seen.push(next));
  primary.answer({ t: 'state', state: toWire(snapshot(2)) });
  primary.answer({ t: 'state', state: toWire(snapshot(3)) });
  expect(seen).toEqual([snapshot(2), snapshot(3)]);
  expect(seen[1]!.secrets.get('pw')).toEqual({ alice: 'pw-3' });
});

it('asks the primary for TokenReviews: the status, or the failure of its API call', async () => {
  const source = link.clusterState();
  primary.answer({ t: 'state', state: toWire(snapshot(1)) });
  const { tokenReview } = await source;
  const spec = { token: 't', audiences: ['drawbridge.dev'] };
  const ok = tokenReview(spec);
  const failed = tokenReview(spec).catch((err: unknown) => err);
  expect(primary.sent.slice(1)).toEqual([
    { t: 'review', id: 0, spec },
    { t: 'review', id: 1, spec },
  ]);
  primary.answer({ t: 'reviewed', id: 1, error: 'no response within 30000 ms' });
  primary.answer({ t: 'reviewed', id: 0, status: { authenticated: true } });
  await expect(ok).resolves.toEqual({ authenticated: true });
  expect(await failed).toMatchObject({ message: 'no response within 30000 ms' });
});
