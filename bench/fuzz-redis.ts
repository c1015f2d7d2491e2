// `make fuzz-redis`: a million inputs through the RESP request parser and reply framer — valid
// command streams, valid reply trees, random and RESP-shaped bytes, mutated valid streams — each cut
// at random offsets. Exits non-zero on the first failing input (fast-check prints it and its seed).
import fc from 'fast-check';
import {
  checkCommands,
  checkHostile,
  checkReplies,
  commandStream,
  hostileBytes,
  mutatedStream,
  replyValue,
} from './fuzz-redis-harness.js';

const total = Number(process.argv[2] ?? 1_000_000);
const seed = Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31);
const offsets = fc.array(fc.nat(), { maxLength: 4 });
const properties = [
  ['valid command streams', fc.property(commandStream, offsets, checkCommands)],
  ['valid reply trees', fc.property(fc.array(replyValue, { maxLength: 6 }), offsets, checkReplies)],
  ['random and RESP-shaped bytes', fc.property(hostileBytes, offsets, checkHostile)],
  ['mutated valid streams', fc.property(mutatedStream, offsets, checkHostile)],
] as const;

const started = process.hrtime.bigint();
const runs = Math.floor(total / properties.length);
for (const [label, property] of properties) {
  fc.assert(property as fc.IProperty<unknown>, { numRuns: runs, seed });
  console.log(`${label}: ${runs} inputs ok`);
}
const seconds = Number(process.hrtime.bigint() - started) / 1e9;
console.log(`fuzz-redis: ${runs * properties.length} inputs in ${seconds.toFixed(1)} s (seed ${seed})`);
