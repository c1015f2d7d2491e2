// keySlot against Redis itself. Expected slots were obtained from a real Redis 7.0 node
// (`redis-server --cluster-enabled yes`, then `redis-cli CLUSTER KEYSLOT <key>`; binary keys via
// `printf ... | redis-cli -x CLUSTER KEYSLOT`), so the hash-tag edge cases follow cluster.c, not a port.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { keySlot, keySlotIn } from '../../../src/engines/redis/cluster/key-slot.js';

describe('keySlot matches CLUSTER KEYSLOT', () => {
  it.each([
    ['', 0],
    ['foo', 12182],
    ['123456789', 12739],
    ['{user1}:a', 8106],
    ['foo{bar}', 5061],
    ['ab{c}', 7365],
    // An empty tag means the whole key is hashed, whatever follows it.
    ['a{}b}', 14284],
    ['{}', 15257],
    ['{}a', 10875],
    ['a{}', 6082],
    ['{}}', 14790],
    ['a{}}b', 1887],
    ['{}{}', 15786],
    ['{}{a}', 13650],
    ['x{}y{z}', 15453],
    ['}{}{b}', 11230],
    // Only the first '{' and the first '}' after it count.
    ['{a}{b}', 15495],
    ['{a}}', 15495],
    ['{a}{}', 15495],
    ['}{a}', 15495],
    ['{{a}}', 10276],
    ['{{a}', 10276],
    ['{a', 10276],
    ['{{}}x', 4092],
    ['{', 4092],
    ['a{b{c}d}', 15725],
    ['{abc', 444],
    ['a}', 5921],
    ['a{ }b', 9314],
  ])('%j → %i', (key, slot) => expect(keySlot(Buffer.from(key))).toBe(slot));

  it.each([
    ['é{é}', Buffer.from('é{é}'), 10180],
    ['0x00 { 0xff } 0x01', Buffer.from([0x00, 0x7b, 0xff, 0x7d, 0x01]), 7920],
    ['0xff', Buffer.from([0xff]), 7920],
  ])('binary %s → %i', (_, key, slot) => expect(keySlot(key)).toBe(slot));
});

describe('keySlot hash tags', () => {
  it('a key with a non-empty tag lands in the slot of the tag itself', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1 }).filter((t) => !t.includes('}')),
        fc.string().filter((p) => !p.includes('{')),
        fc.string(),
        (tag, prefix, suffix) =>
          keySlot(Buffer.from(`${prefix}{${tag}}${suffix}`)) === keySlot(Buffer.from(tag)),
      ),
    );
  });
});

describe('keySlotIn (a key read in place, as parsed commands hold them)', () => {
  it('is keySlot of the key alone, whatever braces lie before or after it', () => {
    const braces = fc.stringMatching(/^[{}ab]*$/);
    fc.assert(
      fc.property(braces, braces, braces, (before, key, after) => {
        const buf = Buffer.from(before + key + after);
        const start = Buffer.byteLength(before);
        return keySlotIn(buf, start, start + Buffer.byteLength(key)) === keySlot(Buffer.from(key));
      }),
      { numRuns: 2000 },
    );
  });

  it('does not take a tag closed in the next argument: GET x{y then z}', () =>
    expect(keySlotIn(Buffer.from('x{yz}'), 0, 3)).toBe(keySlot(Buffer.from('x{y'))));
});
