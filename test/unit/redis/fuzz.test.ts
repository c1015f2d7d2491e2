// Property tests over the RESP parsers (bench/fuzz-redis runs the same properties a million times):
// exact parsing of valid streams under any chunking, typed errors only on hostile bytes, and raw
// command bytes that re-parse to what was authorized.
import { describe, it } from 'vitest';
import { redisFuzzProperties } from '../../../bench/fuzz-redis-harness.js';

describe('RESP fuzz', () => {
  for (const [label, property] of redisFuzzProperties) {
    it(label, () => property({ numRuns: 600 }));
  }
});
