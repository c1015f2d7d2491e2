// Combining the replies of one command sent to several nodes, by the response policy Redis publishes
// in its command tips. Replies stay raw frames where possible: concatenating KEYS results only
// rewrites the array header.
import { findCrlf, parseRespInt } from '../chunk-buffer.js';
import { type RespValue, decodeReply } from '../reply-parser.js';
import { RedisReplyError } from '../router.js';
import { arrayHeader, bulkReply, encodeValue, integerReply } from '../serializer.js';
import type { ResponsePolicy } from './command-rules.js';

export type Reply = Buffer | RedisReplyError;

export function isErrorReply(r: Reply): boolean {
  return !Buffer.isBuffer(r) || r[0] === 0x2d; // '-'
}

const NULL_ARRAY = Buffer.from('*-1\r\n');

/**
 * One reply for the client. `labels` name the node each reply came from (for `special` text replies
 * such as INFO). Without a policy, Redis asks clients to aggregate: arrays are concatenated (KEYS,
 * SLOWLOG GET), anything else takes the first non-null reply (RANDOMKEY).
 */
export function mergeReplies(policy: ResponsePolicy | undefined, replies: Reply[], labels: string[]): Reply {
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
      return firstError ?? aggregate(policy, replies as Buffer[]);
    case 'special':
      return firstError ?? labelled(replies as Buffer[], labels);
    default:
      if (firstError) return firstError;
      if (replies.every((r) => (r as Buffer)[0] === 0x2a)) return concatArrays(replies as Buffer[]);
      return replies.find((r) => !isNull(r as Buffer)) ?? replies[0]!;
  }
}

function isNull(frame: Buffer): boolean {
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

/** Integers, or arrays of integers element by element (SCRIPT EXISTS). */
function aggregate(policy: ResponsePolicy, frames: Buffer[]): Reply {
  const values = frames.map(decodeReply);
  const first = values[0];
  if (typeof first === 'number') {
    let acc = first;
    for (const v of values.slice(1)) acc = combine(policy, acc, typeof v === 'number' ? v : 0);
    return integerReply(acc);
  }
  if (Array.isArray(first)) {
    const acc = first.map((v) => (typeof v === 'number' ? v : 0));
    for (const v of values.slice(1)) {
      if (!Array.isArray(v)) continue;
      for (let i = 0; i < acc.length; i++) acc[i] = combine(policy, acc[i]!, Number(v[i] ?? 0));
    }
    return encodeValue(acc);
  }
  return new RedisReplyError('ERR', `cannot aggregate replies of this shape across cluster nodes`);
}

/**
 * `special` replies the agent cannot combine generically: text (INFO, MEMORY DOCTOR) becomes one text
 * with a `# Node host:port` line before each node's part; anything else an array of [node, reply].
 */
function labelled(frames: Buffer[], labels: string[]): Buffer {
  const values = frames.map(decodeReply);
  if (values.every((v) => Buffer.isBuffer(v))) {
    const text = values
      .map((v, i) => `# Node ${labels[i]}\r\n${(v as Buffer).toString('utf8')}`)
      .join('\r\n');
    return bulkReply(text);
  }
  const pairs: RespValue[] = values.map((v, i) => [Buffer.from(labels[i]!), v]);
  return encodeValue(pairs);
}
