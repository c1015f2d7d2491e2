import { describe, expect, it } from 'vitest';
import { PatternBound } from '../../../src/engines/redis/pubsub-patterns.js';
import { MAX_SUBSCRIPTION_BYTES } from '../../../src/engines/redis/pubsub-tracker.js';

const names = (...n: string[]) => n.map((s) => Buffer.from(s));

describe('PatternBound', () => {
  it('counts distinct patterns; a PSUBSCRIBE past the bound is refused whole', () => {
    const b = new PatternBound();
    expect(b.subscribe(names('a*', 'b*', 'a*'), 3)).toBeUndefined();
    expect(b.size).toBe(2);
    // Held ones are not counted again.
    expect(b.subscribe(names('a*', 'b*', 'c*'), 3)).toBeUndefined();
    const refused = b.subscribe(names('a*', 'd*'), 3);
    expect(refused?.message).toContain('more than 3 pub/sub patterns (limits.maxPubSubPatterns)');
    expect(refused?.hint).toContain('raise maxPubSubPatterns in spec.agent.limits');
    expect(b.size).toBe(3);
  });

  it('PUNSUBSCRIBE frees the patterns it names, or all of them', () => {
    const b = new PatternBound();
    b.subscribe(names('a*', 'b*'), 2);
    b.unsubscribe(names('a*', 'never*'));
    expect(b.subscribe(names('c*'), 2)).toBeUndefined();
    b.unsubscribe([]);
    expect(b.size).toBe(0);
    expect(b.subscribe(names('x*', 'y*'), 2)).toBeUndefined();
  });

  it('refuses patterns past the bytes the agent keeps of subscription names', () => {
    const b = new PatternBound();
    const half = Buffer.alloc(MAX_SUBSCRIPTION_BYTES / 2, 'p');
    expect(b.subscribe([half], 10)).toBeUndefined();
    expect(b.subscribe([Buffer.concat([half, Buffer.from('!')])], 10)).toBeDefined();
    b.clear();
    expect(b.subscribe([Buffer.concat([half, Buffer.from('!')])], 10)).toBeUndefined();
  });
});
