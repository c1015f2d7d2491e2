import { describe, expect, it } from 'vitest';
import { groupBy, shardCounts } from '../../../src/engines/redis/cluster/pubsub-groups.js';

const b = (...names: string[]) => names.map((n) => Buffer.from(n));

describe('groupBy', () => {
  it('keeps each group in order and leaves out the names with no key', () => {
    const groups = groupBy(b('a1', 'b1', 'a2', 'x', 'b2'), (n) => (n[0] === 0x78 ? undefined : n[0]));
    expect([...groups].map(([k, g]) => [k, g.map(String)])).toEqual([
      [0x61, ['a1', 'a2']],
      [0x62, ['b1', 'b2']],
    ]);
  });
});

describe('shardCounts', () => {
  it('counts as one server does: held channels, then each new one once', () => {
    const held = new Map([['old', 1]]);
    expect(shardCounts(b('new1', 'old', 'new1', 'new2'), held)).toEqual([2, 2, 2, 3]);
  });
});
