// PushOrder under a subscriber that interleaves commands and pushes behind a command that does not
// answer (BLPOP k 0 while subscribed): the held groups are bounded, yet no push overtakes the reply
// of a command sent before it, and the pushes leave in the order they came.
import { describe, expect, it } from 'vitest';
import { PushOrder } from '../../../src/engines/redis/cluster/push-order.js';

describe('PushOrder with many interleaved pushes', () => {
  it('holds every push until the commands before it are answered, and keeps their order', () => {
    const out: string[] = [];
    const order = new PushOrder((f) => out.push(f.toString()));
    const blpop = order.sent();
    const sent: number[] = [];
    for (let i = 0; i < 1000; i++) {
      sent.push(order.sent());
      order.push(Buffer.from(`m${i}`));
    }
    // Every command after the BLPOP is answered: nothing may leave while the BLPOP is out.
    for (const n of sent) order.answer(n);
    expect(out).toEqual([]);
    order.answer(blpop);
    expect(out).toEqual(Array.from({ length: 1000 }, (_, i) => `m${i}`));
    expect(order.pending).toBe(0);
  });

  it('a push held past the group bound still waits for the command just before it', () => {
    const out: string[] = [];
    const order = new PushOrder((f) => out.push(f.toString()));
    const first = order.sent();
    for (let i = 0; i < 40; i++) {
      order.sent();
      order.push(Buffer.from(`m${i}`));
    }
    const last = order.sent();
    order.push(Buffer.from('after-last'));
    order.answer(first);
    for (let n = first + 1; n < last; n++) order.answer(n);
    expect(out).not.toContain('after-last');
    order.answer(last);
    expect(out.at(-1)).toBe('after-last');
    expect(out).toHaveLength(41);
  });
});
