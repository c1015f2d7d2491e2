import { describe, expect, it } from 'vitest';
import { containsDesired } from '../../../src/kube/subset.js';

describe('containsDesired', () => {
  it.each([
    ['equal scalars', 1, 1, true],
    ['different scalars', 'a', 'b', false],
    ['server-added fields are ignored', { a: 1 }, { a: 1, b: 2 }, true],
    ['a missing field differs', { a: 1, b: 2 }, { a: 1 }, false],
    [
      'nested defaults are ignored',
      { spec: { ports: [{ port: 1 }] } },
      { spec: { ports: [{ port: 1, protocol: 'TCP' }] } },
      true,
    ],
    ['array length matters', { l: [1, 2] }, { l: [1, 2, 3] }, false],
    ['array order matters', { l: [1, 2] }, { l: [2, 1] }, false],
    ['undefined desired fields are skipped', { a: undefined, b: 1 }, { b: 1 }, true],
    ['object vs array', { a: {} }, { a: [] }, false],
    ['object vs null', { a: { b: 1 } }, { a: null }, false],
  ])('%s', (_name, desired, actual, expected) => {
    expect(containsDesired(desired, actual)).toBe(expected);
  });
});
