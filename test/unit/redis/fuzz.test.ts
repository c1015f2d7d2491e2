// Property tests over the RESP parsers (bench/fuzz-redis runs the same harness a million times).
import fc from 'fast-check';
import { describe, it } from 'vitest';
import {
  checkCommands,
  checkHostile,
  checkReplies,
  commandStream,
  hostileBytes,
  mutatedStream,
  replyValue,
} from '../../../bench/fuzz-redis-harness.js';

const offsets = fc.array(fc.nat(), { maxLength: 4 });
const numRuns = 400;

describe('RESP fuzz', () => {
  it('valid command streams parse exactly under any chunking', () => {
    fc.assert(fc.property(commandStream, offsets, checkCommands), { numRuns });
  });
  it('valid reply trees frame and decode exactly under any chunking', () => {
    fc.assert(fc.property(fc.array(replyValue, { maxLength: 6 }), offsets, checkReplies), { numRuns });
  });
  it('hostile bytes end in typed errors only, and accepted commands re-parse identically', () => {
    fc.assert(fc.property(hostileBytes, offsets, checkHostile), { numRuns: numRuns * 2 });
  });
  it('mutated valid streams end in typed errors only', () => {
    fc.assert(fc.property(mutatedStream, offsets, checkHostile), { numRuns: numRuns * 2 });
  });
});
