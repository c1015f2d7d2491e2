import { afterEach, describe, expect, it, vi } from 'vitest';
import { WorkQueue } from '../../../src/operator/workqueue.js';

afterEach(() => vi.useRealTimers());

describe('WorkQueue', () => {
  it('hands out a key once however often it is added', async () => {
    const q = new WorkQueue();
    q.add('a');
    q.add('b');
    q.add('a');
    expect(q.length).toBe(2);
    expect(await q.get()).toBe('a');
    expect(await q.get()).toBe('b');
    expect(q.length).toBe(0);
  });

  it('never gives a key to two workers: re-added while processing, it comes back after done', async () => {
    const q = new WorkQueue();
    q.add('a');
    const key = await q.get();
    q.add('a');
    expect(q.length).toBe(0); // not handed out again yet
    q.done(key!);
    expect(q.length).toBe(1);
    expect(await q.get()).toBe('a');
  });

  it('wakes a waiting worker', async () => {
    const q = new WorkQueue();
    const next = q.get();
    q.add('x');
    expect(await next).toBe('x');
  });

  it.each([
    [0, 5],
    [1, 10],
    [3, 40],
    [30, 300_000],
  ])('backs off exponentially per key: after %i failures waits %i ms', (failures, ms) => {
    expect(new WorkQueue().backoff(failures)).toBe(ms);
  });

  it('retries a failing key later and later until forget resets it', () => {
    vi.useFakeTimers();
    const q = new WorkQueue({ baseDelayMs: 100 });
    q.addRateLimited('k');
    q.addRateLimited('k'); // second failure: 200 ms; the pending 100 ms add wins
    expect(q.failuresOf('k')).toBe(2);
    vi.advanceTimersByTime(99);
    expect(q.length).toBe(0);
    vi.advanceTimersByTime(1);
    expect(q.length).toBe(1);
    q.forget('k');
    expect(q.failuresOf('k')).toBe(0);
  });

  it('keeps the earliest of two delayed adds', () => {
    vi.useFakeTimers();
    const q = new WorkQueue();
    q.addAfter('k', 1000);
    q.addAfter('k', 50);
    vi.advanceTimersByTime(50);
    expect(q.length).toBe(1);
  });

  it('releases waiting workers on shut down and ignores later adds', async () => {
    const q = new WorkQueue();
    const waiting = q.get();
    q.shutDown();
    expect(await waiting).toBeUndefined();
    q.add('late');
    expect(q.length).toBe(0);
  });
});
