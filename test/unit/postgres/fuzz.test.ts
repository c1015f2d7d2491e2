// Property tests over the PostgreSQL parsers (bench/fuzz-postgres runs the same harness a million times).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  feedAllCuts,
  feedLogin,
  frontendMessage,
  loginSequence,
  mutatedStream,
  randomBytes,
} from '../../fuzz/postgres-harness.js';
import { FRONTEND_LIMITS, MessageScanner, codeSet } from '../../../src/engines/postgres/parser.js';

describe('parser fuzz', () => {
  it('throws only typed protocol errors on random bytes, cut at every offset', () => {
    fc.assert(
      fc.property(randomBytes, (input) => feedAllCuts(input)),
      { numRuns: 300 },
    );
  });

  it('throws only typed protocol errors on mutated valid streams, cut at every offset', () => {
    fc.assert(
      fc.property(mutatedStream, (input) => feedAllCuts(input)),
      { numRuns: 300 },
    );
  });

  it('throws only typed errors on whole connections across the login boundary, in both directions', () => {
    fc.assert(
      fc.property(loginSequence, (seq) => feedLogin(seq)),
      { numRuns: 2000 },
    );
  });

  it('frames valid streams identically however they are cut', () => {
    const all = codeSet(Array.from({ length: 256 }, (_, i) => i));
    const frames = (chunks: Buffer[]) => {
      const seen: string[] = [];
      const scanner = new MessageScanner(FRONTEND_LIMITS, all);
      for (const c of chunks) scanner.scan(c, (code, body) => seen.push(`${code}:${body.toString('hex')}`));
      return seen;
    };
    fc.assert(
      fc.property(
        fc.array(frontendMessage, { maxLength: 6 }),
        fc.array(fc.nat(), { maxLength: 4 }),
        (messages, cutAt) => {
          const stream = Buffer.concat(messages);
          const points = [...new Set(cutAt.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
          const chunks = [0, ...points].map((p, i, all) => stream.subarray(p, all[i + 1] ?? stream.length));
          expect(frames(chunks)).toEqual(frames([stream]));
          expect(frames([stream])).toHaveLength(messages.length);
        },
      ),
      { numRuns: 300 },
    );
  });
});
