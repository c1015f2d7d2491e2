import { describe, expect, it } from 'vitest';
import { semiSpaceOf, withSemiSpace } from '../../../src/cli/semi-space.js';

describe('the semi-space bound Node runs with', () => {
  it('is read from its options, the last one winning as in V8, in either spelling', () => {
    expect(semiSpaceOf([])).toBeUndefined();
    expect(semiSpaceOf(['--import', 'x.js'])).toBeUndefined();
    expect(semiSpaceOf(['--max-semi-space-size=2'])).toBe(2);
    expect(semiSpaceOf(['--max-semi-space-size=2', '--max_semi_space_size=16'])).toBe(16);
    expect(semiSpaceOf(['--max-semi-space-size', '8', '--import', 'x.js'])).toBe(8);
  });

  it('is replaced, keeping every other option', () => {
    const argv = [
      '--import',
      'probe.js',
      '--max-semi-space-size=2',
      '--max-semi-space-size',
      '4',
      '--cpu-prof',
    ];
    expect(withSemiSpace(argv, 16)).toEqual([
      '--import',
      'probe.js',
      '--cpu-prof',
      '--max-semi-space-size=16',
    ]);
    expect(semiSpaceOf(withSemiSpace(argv, 16))).toBe(16);
    expect(withSemiSpace([], 8)).toEqual(['--max-semi-space-size=8']);
  });
});
