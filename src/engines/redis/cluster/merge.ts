// Combining the replies of one command sent to several nodes, by the response policy Redis publishes
// in its command tips. Replies stay raw frames where possible: concatenating KEYS results only
// rewrites the array header. Replies come in the session's protocol (its connections speak it), and
// the merged reply goes out in it: RESP3 sets are united, maps joined, doubles and booleans
// aggregated as what they are, verbatim text labelled per node like RESP2's bulk text.
import { findCrlf, parseRespInt } from '../chunk-buffer.js';
import {
  RespDouble,
  RespMap,
  RespSet,
  type RespValue,
  RespVerbatim,
  decodeReply,
  isErrorFrame,
} from '../reply-parser.js';
import { RedisReplyError } from '../router.js';
import { type RespVersion, arrayHeader, bulkReply, encodeValue } from '../serializer.js';
import type { ResponsePolicy } from './command-rules.js';
import { NULL_ARRAY } from './protocol.js';

export type Reply = Buffer | RedisReplyError;

export function isErrorReply(r: Reply): boolean {
  return !Buffer.isBuffer(r) || isErrorFrame(r);
}

const enum Byte {
  Array = 0x2a, // *
  Set = 0x7e, // ~
  Map = 0x25, // %
}

/**
 * One reply for the client. `labels` name the node each reply came from (for `special` replies such
 * as INFO). Without a policy, Redis asks clients to aggregate: arrays are concatenated (KEYS,
 * SLOWLOG GET), sets united, maps joined, anything else takes the first non-null reply (RANDOMKEY).
 */
export function mergeReplies(
  policy: ResponsePolicy | undefined,
  replies: Reply[],
  labels: string[],
  proto: RespVersion = 2,
): Reply {
  const firstError = replies.find(isErrorReply);
  switch (policy) {
    case 'one_succeeded':
      return replies.find((r) => !isErrorReply(r)) ?? replies[0]!;
    case 'all_succeeded':
      return firstError ?? replies[0]!;
    case 'agg_sum':
    case 'agg_min':
    case 'agg_max':
    case 'agg_logical_and':
    case 'agg_logical_or':
      return firstError ?? aggregate(policy, replies as Buffer[], proto);
    case 'special':
      return firstError ?? labelled(replies as Buffer[], labels, proto);
    default: {
      if (firstError) return firstError;
      const frames = replies as Buffer[];
      const type = frames[0]![0];
      if (frames.every((f) => f[0] === type)) {
        if (type === Byte.Array) return concatArrays(frames);
        if (type === Byte.Set) return unite(frames);
        if (type === Byte.Map) return join(frames);
      }
      return frames.find((r) => !isNull(r)) ?? frames[0]!;
    }
  }
}

/** `$-1`, `*-1` or RESP3's `_`. */
function isNull(frame: Buffer): boolean {
  if (frame.length === 3) return frame[0] === 0x5f; // `_\r\n`
  return frame.length === 5 && frame[1] === 0x2d && frame[2] === 0x31; // `$-1\r\n` or `*-1\r\n`
}

/** `*a ...` + `*b ...` → `*(a+b) ...`, copying only the element bytes once. */
export function concatArrays(frames: readonly Buffer[]): Buffer {
  let count = 0;
  const bodies: Buffer[] = [];
  for (const f of frames) {
    const cr = findCrlf(f, 1, f.length);
    const n = parseRespInt(f, 1, cr);
    if (n > 0) {
      count += n;
      bodies.push(f.subarray(cr + 2));
    }
  }
  if (count === 0 && frames.every((f) => f.equals(NULL_ARRAY))) return NULL_ARRAY;
  return Buffer.concat([arrayHeader(count), ...bodies]);
}

/** RESP3 sets from several nodes: one set, each member once. */
function unite(frames: readonly Buffer[]): Buffer {
  const items = frames.map(decodeReply).flatMap((v) => (v instanceof RespSet ? v.items : []));
  return encodeValue(new RespSet(firstByKey(items, (item) => item)), 3);
}

/** RESP3 maps from several nodes: one map; a key two nodes both answer keeps the first node's value. */
function join(frames: readonly Buffer[]): Buffer {
  const entries = frames.map(decodeReply).flatMap((v) => (v instanceof RespMap ? v.entries : []));
  return encodeValue(new RespMap(firstByKey(entries, (entry) => entry[0])), 3);
}

/** `items` in order, each only if no earlier one has a key of the same encoding. */
function firstByKey<T>(items: readonly T[], keyOf: (item: T) => RespValue): T[] {
  const seen = new Map<string, T>();
  for (const item of items) {
    const key = encodeValue(keyOf(item), 3).toString('latin1');
    if (!seen.has(key)) seen.set(key, item);
  }
  return [...seen.values()];
}

/**
 * `[channel, count, ...]` (or a map of channel → count) from every master, counts summed per channel:
 * PUBSUB SHARDNUMSUB, where each master counts only the subscribers of the channels it owns.
 */
export function sumCounts(replies: Reply[], proto: RespVersion): Reply {
  const failed = replies.find(isErrorReply);
  if (failed) return failed;
  const values = (replies as Buffer[]).map(decodeReply);
  const first = values[0];
  const at = (v: RespValue, i: number): number => {
    const item = Array.isArray(v) ? v[i] : v instanceof RespMap ? v.entries[i]?.[1] : undefined;
    return typeof item === 'number' ? item : 0;
  };
  const total = (i: number) => values.reduce<number>((n, v) => n + at(v, i), 0);
  if (Array.isArray(first))
    return encodeValue(
      first.map((v, i) => (typeof v === 'number' ? total(i) : v)),
      proto,
    );
  if (first instanceof RespMap)
    return encodeValue(new RespMap(first.entries.map(([k], i) => [k, total(i)])), proto);
  return new RedisReplyError('ERR', 'unexpected PUBSUB SHARDNUMSUB reply shape from a cluster node');
}

function combine(policy: ResponsePolicy, a: number, b: number): number {
  switch (policy) {
    case 'agg_min':
      return Math.min(a, b);
    case 'agg_max':
      return Math.max(a, b);
    case 'agg_logical_and':
      return a && b ? 1 : 0;
    case 'agg_logical_or':
      return a || b ? 1 : 0;
    default:
      return a + b;
  }
}

/** A number-like reply element as a number; undefined for anything else. */
function numeric(v: RespValue | undefined): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (v instanceof RespDouble) return v.value;
  return undefined;
}

/** `n` in the type `like` came as: integer, RESP3 boolean or RESP3 double. */
function asTypeOf(like: RespValue | undefined, n: number): RespValue {
  if (typeof like === 'boolean') return n !== 0;
  if (like instanceof RespDouble) return new RespDouble(n);
  return n;
}

/** Integers, booleans or doubles, or arrays of them element by element (SCRIPT EXISTS). */
function aggregate(policy: ResponsePolicy, frames: Buffer[], proto: RespVersion): Reply {
  const values = frames.map(decodeReply);
  const first = values[0];
  const start = numeric(first);
  if (start !== undefined) {
    let acc = start;
    for (const v of values.slice(1)) acc = combine(policy, acc, numeric(v) ?? 0);
    return encodeValue(asTypeOf(first, acc), proto);
  }
  if (Array.isArray(first)) {
    const acc = first.map((v) => numeric(v) ?? 0);
    for (const v of values.slice(1)) {
      if (!Array.isArray(v)) continue;
      for (let i = 0; i < acc.length; i++) acc[i] = combine(policy, acc[i]!, numeric(v[i]) ?? 0);
    }
    return encodeValue(
      acc.map((n, i) => asTypeOf(first[i], n)),
      proto,
    );
  }
  return new RedisReplyError('ERR', `cannot aggregate replies of this shape across cluster nodes`);
}

/** Bulk text (RESP2) or verbatim text (RESP3 INFO, MEMORY DOCTOR, LATENCY DOCTOR). */
function textOf(v: RespValue): Buffer | undefined {
  if (Buffer.isBuffer(v)) return v;
  if (v instanceof RespVerbatim) return v.text;
  return undefined;
}

/**
 * `special` replies the agent cannot combine generically: text (INFO, MEMORY DOCTOR) becomes one text
 * with a `# Node host:port` line before each node's part (verbatim `txt` in RESP3, as the nodes
 * answered); anything else (MEMORY STATS, LATENCY LATEST) an array of [node, reply], replies kept in
 * the session's protocol (maps stay maps in RESP3).
 */
function labelled(frames: Buffer[], labels: string[], proto: RespVersion): Buffer {
  const values = frames.map(decodeReply);
  const texts = values.map(textOf);
  if (texts.every((t) => t !== undefined)) {
    const text = texts.map((t, i) => `# Node ${labels[i]}\r\n${t!.toString('utf8')}`).join('\r\n');
    return values.every((v) => v instanceof RespVerbatim) && proto === 3
      ? encodeValue(new RespVerbatim('txt', Buffer.from(text)), 3)
      : bulkReply(text);
  }
  const pairs: RespValue[] = values.map((v, i) => [Buffer.from(labels[i]!), v]);
  return encodeValue(pairs, proto);
}
