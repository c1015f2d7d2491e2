// The slot a command must run in, from its key positions: one slot, no keys, or keys of several
// slots (which only the splittable commands survive). Also the CROSSSLOT reply that explains why.
import { type RedisCommand, agentCommand, spanned } from '../parser.js';
import { decodeReply } from '../reply-parser.js';
import { RedisReplyError } from '../router.js';
import { encodeCommand } from '../serializer.js';
import { type CommandRules, keyPositions } from './command-rules.js';
import { keySlotIn } from './key-slot.js';
import type { Done, Lane, SlotSend } from './sender.js';

export const KEYLESS = -1;
export const CROSS_SLOT = -2;

/**
 * Slot of every argument of `cmd` at `positions`, KEYLESS when there are none, CROSS_SLOT when they
 * differ. Keys are hashed where they lie in the command's bytes: no Buffer per argument.
 */
export function slotAt(cmd: RedisCommand, positions: readonly number[]): number {
  if (positions.length === 0) return KEYLESS;
  const { bytes, offset: o, spans } = spanned(cmd);
  const first = 2 * positions[0]!;
  const slot = keySlotIn(bytes, o + spans[first]!, o + spans[first + 1]!);
  for (let i = 1; i < positions.length; i++) {
    const at = 2 * positions[i]!;
    if (keySlotIn(bytes, o + spans[at]!, o + spans[at + 1]!) !== slot) return CROSS_SLOT;
  }
  return slot;
}

export function commandSlot(cmd: RedisCommand, rules: CommandRules): number {
  const fixed = rules.fixedKeys;
  const argc = cmd.spans ? cmd.argc! : cmd.args.length;
  // Keys at fixed places (GET, SET, HSET ...) need neither a position search nor `args`.
  return slotAt(cmd, fixed && argc >= fixed.minArgs ? fixed.positions : keyPositions(rules, cmd.args));
}

/** Slot of explicit key names (from COMMAND GETKEYS). */
export function slotOfKeys(keys: readonly Buffer[]): number {
  return slotAt(
    agentCommand(keys),
    keys.map((_, i) => i),
  );
}

/**
 * SORT ... STORE, MIGRATE ... KEYS: their keys hide where specs cannot see; the backend knows
 * (COMMAND GETKEYS, asked on `shared`), then the command goes to their slot on `lane`.
 */
export function sendByBackendKeys(
  send: SlotSend,
  cmd: RedisCommand,
  rules: CommandRules,
  lane: Lane,
  shared: Lane,
  done: Done,
): boolean {
  const getKeys = encodeCommand(['COMMAND', 'GETKEYS', ...cmd.args]);
  send(getKeys, KEYLESS, true, shared, (reply) => {
    const keys = Buffer.isBuffer(reply) && reply[0] === 0x2a ? keysOf(reply) : undefined;
    const slot = keys ? slotOfKeys(keys) : commandSlot(cmd, rules);
    if (slot === CROSS_SLOT) done(crossSlotError(cmd.name));
    else send(cmd.raw, slot, rules.flags.has('readonly'), lane, done);
  });
  return true;
}

function keysOf(frame: Buffer): Buffer[] | undefined {
  const v = decodeReply(frame);
  return Array.isArray(v) ? v.filter((k): k is Buffer => Buffer.isBuffer(k)) : undefined;
}

export function crossSlotError(command: string, why = 'its keys'): RedisReplyError {
  return new RedisReplyError(
    'CROSSSLOT',
    `Keys in request don't hash to the same slot: this database is a Redis Cluster and '${command}' needs ${why} in one slot; ` +
      'give related keys a common hash tag, e.g. {user1}:a and {user1}:b',
  );
}
