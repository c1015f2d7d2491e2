// How long a blocking command may legitimately go without a reply: its own timeout, plus the command
// timeout as a margin for the node to answer once the wait ends. Never the plain command timeout, which
// would cut `BLPOP q 60` short; no limit when it blocks forever (0) or its timeout cannot be read.
import type { RedisCommand } from '../parser.js';

/** Timeout in seconds as the first argument after the name. */
const TIMEOUT_FIRST = new Set(['blmpop', 'bzmpop']);
/** Timeout in seconds as the last argument. */
const TIMEOUT_LAST = new Set(['blpop', 'brpop', 'brpoplpush', 'blmove', 'bzpopmin', 'bzpopmax']);

/** The command's own wait in milliseconds; 0 for "forever", undefined when it cannot be read. */
export function blockingWaitMs(cmd: RedisCommand): number | undefined {
  const { name, args } = cmd;
  let ms: number;
  if (TIMEOUT_FIRST.has(name)) ms = Number(args[1]?.toString('latin1')) * 1000;
  else if (TIMEOUT_LAST.has(name)) ms = Number(args[args.length - 1]?.toString('latin1')) * 1000;
  else if (name === 'xread' || name === 'xreadgroup') ms = Number(optionValue(args, 'block'));
  else return undefined;
  return Number.isFinite(ms) && ms >= 0 ? Math.ceil(ms) : undefined;
}

/** The reply limit for a blocking command (0: none); see the file header. */
export function blockingReplyLimitMs(cmd: RedisCommand, commandTimeoutMs: number): number {
  const wait = blockingWaitMs(cmd);
  return wait === undefined || wait === 0 ? 0 : wait + commandTimeoutMs;
}

function optionValue(args: readonly Buffer[], option: string): string | undefined {
  for (let i = 1; i < args.length - 1; i++) {
    const a = args[i]!.toString('latin1').toLowerCase();
    if (a === 'streams') return undefined;
    if (a === option) return args[i + 1]!.toString('latin1');
  }
  return undefined;
}
