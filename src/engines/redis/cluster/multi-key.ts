// Multi-key commands whose keys live in different slots. Redis Cluster refuses them (CROSSSLOT); a
// client of a single Redis expects them to work. These six can be split into one command per slot
// without changing what they mean to the client, only their atomicity across slots (which a client
// of a sharded store cannot observe in a way it could rely on anyway): MSETNX, by contrast, promises
// "all or none", which per-slot pieces cannot keep, so it and every other cross-slot command get a
// CROSSSLOT error instead.
import type { RedisCommand } from '../parser.js';
import { decodeReply, type RespValue } from '../reply-parser.js';
import { RedisReplyError } from '../router.js';
import { type RespVersion, encodeCommand, encodeValue } from '../serializer.js';
import { type CommandRules, type ResponsePolicy, keyPositions } from './command-rules.js';
import { keySlot } from './key-slot.js';
import { type Reply, isErrorReply, mergeReplies } from './merge.js';
import type { Done, Lane, SlotSend } from './sender.js';

export const SPLITTABLE: ReadonlySet<string> = new Set(['mget', 'mset', 'del', 'unlink', 'exists', 'touch']);

export interface SlotGroup {
  slot: number;
  /** Which key units (0-based, in command order) this group carries. */
  units: number[];
  /** The per-slot command: the original name followed by this group's key units. */
  args: Buffer[];
}

/**
 * The command's key units grouped by slot, groups in order of first appearance. A unit is a key and
 * the `step - 1` arguments after it (MSET's value).
 */
export function splitBySlot(
  args: readonly Buffer[],
  positions: readonly number[],
  step: number,
): SlotGroup[] {
  const groups = new Map<number, SlotGroup>();
  positions.forEach((pos, unit) => {
    const slot = keySlot(args[pos]!);
    let g = groups.get(slot);
    if (!g) {
      g = { slot, units: [], args: [args[0]!] };
      groups.set(slot, g);
    }
    g.units.push(unit);
    for (let i = 0; i < step; i++) g.args.push(args[pos + i]!);
  });
  return [...groups.values()];
}

/**
 * One reply from the per-slot replies. With no response policy Redis asks for replies in key order
 * (MGET); otherwise the policy says how (MSET: all_succeeded, DEL/EXISTS/...: agg_sum).
 */
export function mergeSplit(
  policy: ResponsePolicy | undefined,
  groups: readonly SlotGroup[],
  replies: readonly Reply[],
  unitCount: number,
  proto: RespVersion = 2,
): Reply {
  if (policy !== undefined) return mergeReplies(policy, [...replies], [], proto);
  const failed = replies.find(isErrorReply);
  if (failed) return failed;
  const out = new Array<RespValue>(unitCount).fill(null);
  for (let g = 0; g < groups.length; g++) {
    const values = decodeReply(replies[g] as Buffer);
    if (!Array.isArray(values))
      return new RedisReplyError('ERR', 'unexpected reply shape from a cluster node');
    groups[g]!.units.forEach((unit, j) => (out[unit] = values[j] ?? null));
  }
  return encodeValue(out, proto);
}

/** Cross-slot MGET/MSET/DEL/UNLINK/EXISTS/TOUCH: one command per slot, in parallel, merged in order. */
export function sendSplit(
  send: SlotSend,
  cmd: RedisCommand,
  rules: CommandRules,
  lane: Lane,
  done: Done,
  proto: RespVersion,
): boolean {
  const positions = keyPositions(rules, cmd.args);
  const step = rules.specs[0]?.find.type === 'range' ? rules.specs[0].find.keyStep : rules.legacy.step;
  const groups = splitBySlot(cmd.args, positions, Math.max(1, step));
  const replies = new Array<Reply>(groups.length);
  let left = groups.length;
  let ok = true;
  groups.forEach((g, i) => {
    ok =
      send(encodeCommand(g.args), g.slot, rules.flags.has('readonly'), lane, (reply) => {
        replies[i] = reply;
        if (--left === 0) done(mergeSplit(rules.responsePolicy, groups, replies, positions.length, proto));
      }) && ok;
  });
  return ok;
}
