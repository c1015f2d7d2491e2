// Property tests over the RESP parsers (bench/fuzz-redis runs the same properties a million times):
// exact parsing of valid streams under any chunking, typed errors only on hostile bytes, and raw
// command bytes that re-parse to what was authorized; and message sequences across the login boundary
// through an in-process agent (test/fuzz/redis-login.ts).
import { describe, it } from 'vitest';
import { redisFuzzProperties } from '../../fuzz/redis-harness.js';
import { fuzzLogin } from '../../fuzz/redis-login.js';

describe('RESP fuzz', () => {
  for (const [label, property] of redisFuzzProperties) {
    it(label, () => property({ numRuns: 600 }));
  }
  it(
    'message sequences across the login boundary, through the agent',
    () => fuzzLogin({ numRuns: 150 }),
    60_000,
  );
});
