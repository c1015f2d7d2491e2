// `make fuzz-postgres`: a million inputs through the PostgreSQL parsers (half random bytes, half
// mutated valid streams), each cut once at a random offset. Exits non-zero on the first input that
// makes a parser throw anything but a typed protocol error, printing it as hex.
import fc from 'fast-check';
import { feed, mutatedStream, randomBytes } from './fuzz-postgres-harness.js';

const total = Number(process.argv[2] ?? 1_000_000);
const started = process.hrtime.bigint();
let bytes = 0;
for (const [label, arbitrary] of [
  ['random bytes', randomBytes],
  ['mutated valid streams', mutatedStream],
] as const) {
  const runs = Math.floor(total / 2);
  fc.assert(
    fc.property(arbitrary, fc.nat(), (input, at) => {
      bytes += input.length;
      const cut = at % (input.length + 1);
      feed([input.subarray(0, cut), input.subarray(cut)]);
    }),
    { numRuns: runs, seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31) },
  );
  console.log(`${label}: ${runs} inputs, no untyped error`);
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(
  `fuzz-postgres: ${total} inputs (${(bytes / 1e6).toFixed(1)} MB) in ${seconds.toFixed(1)} s, ${Math.round(total / seconds)} inputs/s`,
);
