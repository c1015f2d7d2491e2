// Blocking commands (BLPOP, XREAD BLOCK ...) of one session wait on a dedicated connection per node,
// so they hold up nobody else's commands. How long one may legitimately go without a reply: its own
// timeout, plus the command timeout as a margin for the node to answer once the wait ends. Never the
// plain command timeout, which would cut `BLPOP q 60` short; no limit when it blocks forever (0) or
// its timeout cannot be read.
import type { RedisCommand } from '../parser.js';
import { encodeCommand } from '../serializer.js';
import type { CommandRules } from './command-rules.js';
import type { NodeConnection } from './node-connection.js';
import type { Lane } from './sender.js';
import type { Lender } from './tracking.js';

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

/**
 * WAIT holds the node's shared connection, so its timeout is capped (0 = "forever" becomes this).
 * It cannot move to a dedicated connection like BLPOP: WAIT waits for the writes made on the
 * connection it runs on, and a session's writes went over the shared one; on a dedicated connection
 * with no writes it would return at once, promising durability it never checked.
 */
const MAX_WAIT_MS = 1000;

/**
 * WAIT n 0 would block the shared connection forever; its timeout is capped, below half the command
 * timeout so a WAIT never looks like a hung node. Other commands are returned as they are.
 */
export function capWait(cmd: RedisCommand, commandTimeoutMs: number): Buffer {
  if (cmd.name !== 'wait' || cmd.args.length !== 3) return cmd.raw;
  const cap = Math.min(MAX_WAIT_MS, Math.floor(commandTimeoutMs / 2));
  const t = Number(cmd.args[2]!.toString('latin1'));
  if (t > 0 && t <= cap) return cmd.raw;
  return encodeCommand([cmd.args[0]!, cmd.args[1]!, String(cap)]);
}

/** Whether `cmd` blocks: XREAD/XREADGROUP carry the flag but block only with BLOCK before STREAMS. */
export function isBlocking(cmd: RedisCommand, rules: CommandRules): boolean {
  if (!rules.flags.has('blocking')) return false;
  if (cmd.name !== 'xread' && cmd.name !== 'xreadgroup') return true;
  for (let i = 1; i < cmd.args.length; i++) {
    const a = cmd.args[i]!.toString('latin1').toLowerCase();
    if (a === 'streams') return false;
    if (a === 'block') return true;
  }
  return false;
}

/**
 * One session's dedicated connections for blocking commands, taken from its current pool, or while
 * it tracks from its Tracking, so that their reads are tracked too.
 */
export class BlockingLanes {
  private readonly conns = new Map<number, NodeConnection>();

  constructor(
    private readonly lender: Lender,
    private readonly commandTimeoutMs: number,
  ) {}

  /** The lane for `cmd`: allowed to stay silent as long as the command may block. */
  lane(cmd: RedisCommand): Lane {
    const limit = blockingReplyLimitMs(cmd, this.commandTimeoutMs);
    return (node) => {
      let c = this.conns.get(node);
      if (!c || c.closed || !this.lender.current(c)) {
        if (c) this.give(c);
        c = this.lender.take(node);
        this.conns.set(node, c);
      }
      c.replyLimitMs = limit;
      return c;
    };
  }

  pause(): void {
    for (const c of this.conns.values()) c.pause();
  }

  resume(): void {
    for (const c of this.conns.values()) c.resume();
  }

  /** Gives every connection back (a new login or protocol, RESET, the session closing). */
  release(): void {
    for (const c of this.conns.values()) this.give(c);
    this.conns.clear();
  }

  private give(c: NodeConnection): void {
    c.replyLimitMs = undefined; // back to the command timeout for whoever takes it next
    this.lender.release(c, c.inFlight === 0);
  }
}
