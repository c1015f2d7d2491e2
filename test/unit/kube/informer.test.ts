import { describe, expect, it } from 'vitest';
import { KubeApiError } from '../../../src/kube/errors.js';
import type { WatchCallback, WatchDone } from '../../../src/kube/client.js';
import {
  BACKOFF,
  HEALTHY_WATCH_MS,
  RestartBackoff,
  type WatchFn,
  observedWatch,
} from '../../../src/kube/informer.js';

const schedule = (b: RestartBackoff, n: number) => Array.from({ length: n }, () => b.next());

describe('RestartBackoff', () => {
  it('doubles from 800 ms, jittered ×1 to ×2, never past 30 s', () => {
    expect(schedule(new RestartBackoff(() => 0), 8)).toEqual([
      800, 1600, 3200, 6400, 12800, 15000, 15000, 15000,
    ]);
    expect(schedule(new RestartBackoff(() => 0.5), 8)).toEqual([
      1200, 2400, 4800, 9600, 19200, 22500, 22500, 22500,
    ]);
    expect(schedule(new RestartBackoff(() => 0.9999), 8).slice(5)).toEqual([29999, 29999, 29999]);
    for (const d of schedule(new RestartBackoff(), 50)) {
      expect(d).toBeGreaterThanOrEqual(BACKOFF.initialMs);
      expect(d).toBeLessThanOrEqual(BACKOFF.maxMs);
    }
  });

  it('starts again from the initial delay after a reset (a list succeeded, a watch proved healthy)', () => {
    const b = new RestartBackoff(() => 0);
    schedule(b, 7);
    expect(b.next()).toBe(15000);
    b.reset();
    expect(schedule(b, 3)).toEqual([800, 1600, 3200]);
  });

  it("waits at least a 429's Retry-After, still capped", () => {
    const b = new RestartBackoff(() => 0);
    expect(b.next(5000)).toBe(5000);
    expect(b.next(5000)).toBe(5000); // base 1600: the server's ask wins
    expect(b.next(120_000)).toBe(BACKOFF.maxMs);
    expect(b.next(1000)).toBe(6400); // the schedule kept counting
  });

  it("reads Retry-After from the API server's Status", () => {
    const status = JSON.stringify({
      kind: 'Status',
      reason: 'TooManyRequests',
      message: 'storage is (re)initializing',
      details: { retryAfterSeconds: 1 },
      code: 429,
    });
    const err = KubeApiError.fromResponse('GET', '/api/v1/pods', 429, status);
    expect(err.retryAfterMs).toBe(1000);
    expect(err.reason).toBe('TooManyRequests');
    expect(KubeApiError.fromResponse('GET', '/x', 500, 'oops').retryAfterMs).toBeUndefined();
  });
});

/** A watch whose single request the test drives: open (response arrived), events, end. */
function fakeWatch() {
  const calls: { callback: WatchCallback; done: WatchDone; open: () => void }[] = [];
  const watch: WatchFn = (_path, _query, callback, done) =>
    new Promise((resolve) => {
      calls.push({ callback, done, open: () => resolve({ abort: () => undefined }) });
    });
  return { watch, calls };
}

/** One watch through observedWatch on a fake clock; returns what it reported. */
async function watched() {
  let clock = 0;
  const fake = fakeWatch();
  const healthy: number[] = [];
  const ended: unknown[] = [];
  const events: unknown[] = [];
  const w = observedWatch(
    fake.watch,
    () => healthy.push(clock),
    () => clock,
  );
  const request = w(
    '/api/v1/configmaps',
    {},
    (_type, obj) => events.push(obj),
    (err) => ended.push(err),
  );
  const call = fake.calls[0]!;
  return {
    healthy,
    ended,
    events,
    call,
    advance: (ms: number) => (clock += ms),
    /** The response arrives: the watch is open from now. */
    open: async () => {
      call.open();
      await request;
    },
  };
}

describe('observedWatch', () => {
  it('counts a watch that stayed open as healthy when it ends, and passes its error on', async () => {
    const w = await watched();
    await w.open();
    w.advance(10 * 60_000); // a quiet collection: no events for ten minutes
    const err = new Error('connection reset');
    w.call.done(err);
    expect(w.healthy).toHaveLength(1);
    expect(w.ended).toEqual([err]);
  });

  it('counts the first event as healthy at once, not ERROR events; strips managedFields', async () => {
    const w = await watched();
    await w.open();
    w.call.callback('ERROR', { code: 410 } as never);
    expect(w.healthy).toEqual([]);
    const obj = { metadata: { name: 'a', managedFields: [{ manager: 'x' }] } };
    w.call.callback('ADDED', obj as never);
    w.call.callback('MODIFIED', obj as never);
    expect(w.healthy).toHaveLength(1);
    expect(w.events).toEqual([{ code: 410 }, { metadata: { name: 'a' } }, { metadata: { name: 'a' } }]);
  });

  it('turns a watch closed at once without events into an error, so the restart backs off', async () => {
    const w = await watched();
    await w.open();
    w.advance(HEALTHY_WATCH_MS - 1);
    w.call.done(null);
    expect(w.healthy).toEqual([]);
    expect(String(w.ended[0])).toMatch(/watch closed after 999 ms without an event/);
  });

  it('does not count time spent waiting for a response that then failed', async () => {
    const w = await watched();
    w.advance(60_000); // e.g. a slow 429 from a loaded server
    const err = Object.assign(new Error('Too Many Requests'), { statusCode: 429 });
    w.call.done(err);
    w.call.open();
    expect(w.healthy).toEqual([]);
    expect(w.ended).toEqual([err]);
  });

  it('passes a normal end of a healthy watch on as no error (the informer re-watches at once)', async () => {
    const w = await watched();
    await w.open();
    w.advance(HEALTHY_WATCH_MS);
    w.call.done(null);
    expect(w.ended).toEqual([null]);
    expect(w.healthy).toHaveLength(1);
  });
});
