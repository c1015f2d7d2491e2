// `make fuzz-postgres`: a million inputs through the PostgreSQL parsers (a third random bytes, a third
// mutated valid streams, each cut once at a random offset; a third whole connections across the login
// boundary: startup, password, session messages and the server's answers, cut into random chunks). Exits non-zero on the first input that
// makes a parser throw anything but a typed protocol error, printing it as hex.
import fc from 'fast-check';
import { feed, feedLogin, loginSequence, mutatedStream, randomBytes } from '../test/fuzz/postgres-harness.js';

const total = Number(process.argv[2] ?? 1_000_000);
const started = process.hrtime.bigint();
let bytes = 0;
const runs = Math.floor(total / 3);
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
for (const [label, arbitrary] of [
  ['random bytes', randomBytes],
  ['mutated valid streams', mutatedStream],
] as const) {
  fc.assert(
    fc.property(arbitrary, fc.nat(), (input, at) => {
      bytes += input.length;
      const cut = at % (input.length + 1);
      feed([input.subarray(0, cut), input.subarray(cut)]);
    }),
    { numRuns: runs, seed },
  );
  console.log(`${label}: ${runs} inputs, no untyped error`);
}
fc.assert(
  fc.property(loginSequence, (seq) => {
    bytes += seq.client.length + seq.server.length;
    feedLogin(seq);
  }),
  { numRuns: runs, seed },
);
console.log(`connections across the login boundary: ${runs} inputs, no untyped error`);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(
  `fuzz-postgres: ${total} inputs (${(bytes / 1e6).toFixed(1)} MB) in ${seconds.toFixed(1)} s, ${Math.round(total / seconds)} inputs/s`,
);
