// The slot a command must run in, from its key positions: one slot, no keys, or keys of several
// slots (which only the splittable commands survive). Also the CROSSSLOT reply that explains why.
import type { RedisCommand } from '../parser.js';
import { RedisReplyError } from '../router.js';
import { type CommandRules, keyPositions } from './command-rules.js';
import { keySlot } from './key-slot.js';

export const KEYLESS = -1;
export const CROSS_SLOT = -2;

/** Slot of every key at `positions`, KEYLESS when there are none, CROSS_SLOT when they differ. */
export function slotAt(args: readonly Buffer[], positions: readonly number[]): number {
  if (positions.length === 0) return KEYLESS;
  const slot = keySlot(args[positions[0]!]!);
  for (let i = 1; i < positions.length; i++) {
    if (keySlot(args[positions[i]!]!) !== slot) return CROSS_SLOT;
  }
  return slot;
}

export function commandSlot(cmd: RedisCommand, rules: CommandRules): number {
  const fixed = rules.fixedKeys;
  if (fixed && cmd.args.length >= fixed.minArgs) return slotAt(cmd.args, fixed.positions);
  return slotAt(cmd.args, keyPositions(rules, cmd.args));
}

/** Slot of explicit key names (from COMMAND GETKEYS). */
export function slotOfKeys(keys: readonly Buffer[]): number {
  return slotAt(
    keys,
    keys.map((_, i) => i),
  );
}

export function crossSlotError(command: string, why = 'its keys'): RedisReplyError {
  return new RedisReplyError(
    'CROSSSLOT',
    `Keys in request don't hash to the same slot: this database is a Redis Cluster and '${command}' needs ${why} in one slot; ` +
      'give related keys a common hash tag, e.g. {user1}:a and {user1}:b',
  );
}
