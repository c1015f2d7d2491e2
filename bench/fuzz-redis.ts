// `make fuzz-redis`: a million inputs through the RESP request parser and reply framer — valid
// command streams, valid reply trees, random and RESP-shaped bytes, mutated valid streams — each cut
// at random offsets — then one session per thousand inputs of message sequences across the login
// boundary through an in-process agent (test/fuzz/redis-login.ts). Exits non-zero on the first failing
// input (fast-check prints it and its seed).
import { redisFuzzProperties } from '../test/fuzz/redis-harness.js';
import { fuzzLogin } from '../test/fuzz/redis-login.js';

const total = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const started = process.hrtime.bigint();
const runs = Math.floor(total / redisFuzzProperties.length);
for (const [label, property] of redisFuzzProperties) {
  property({ numRuns: runs, seed });
  console.log(`${label}: ${runs} inputs ok`);
}
const sessions = Math.max(100, Math.floor(total / 1000));
await fuzzLogin({ numRuns: sessions, seed });
console.log(`login boundary: ${sessions} sessions ok`);
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(
  `fuzz-redis: ${runs * redisFuzzProperties.length} inputs in ${seconds.toFixed(1)} s (seed ${seed})`,
);
