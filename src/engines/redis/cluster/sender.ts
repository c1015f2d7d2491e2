// Sends one command to the node that owns its slot and keeps at it until there is a reply the
// client may see: MOVED patches the slot table and resends at once, ASK resends once with ASKING to
// the importing node, TRYAGAIN/CLUSTERDOWN/LOADING and unreachable nodes back off and retry (after a
// topology refresh) within a time budget that covers a failover. Redirects never reach the client,
// and go only to nodes the cluster names (redirect.ts). A script or function is the exception: its
// errors are text it may have chosen after writing, so none of them is followed or retried.
//
// A command lost in flight (the node died after it was written) is retried only when it cannot have
// changed anything (a `readonly` command); otherwise the client gets an error saying it may or may
// not have run — the agent never replays a write it cannot prove did not happen.
import type { Logger } from '../../../log.js';
import { errorText, errorTextStart, isErrorFrame } from '../reply-parser.js';
import { RedisReplyError } from '../router.js';
import { NodeTimeoutError, timeoutReply } from './hung-nodes.js';
import type { NodeUnavailable } from './node-connection.js';
import { type NodeConnection, type ReplyTaker, Resp3RefusedError } from './node-connection.js';
import {
  type RedirectContext,
  confirmRedirect,
  scriptCall,
  parseRedirect,
  unconfirmedError,
} from './redirect.js';
import { NO_NODE } from './topology.js';

export interface SendContext extends RedirectContext {
  readonly log: Logger;
  /** How long a command may keep retrying (failover, resharding, cluster down) before failing. */
  readonly retryBudgetMs: number;
  /** A node for keyless commands (round robin over masters). */
  anyNode(): number;
  /**
   * Where every session's SUBSCRIBE/PSUBSCRIBE connection lives and PUBLISH goes. PUBLISH reaches
   * subscribers on every node anyway (the cluster bus broadcasts it); sending both to one node makes
   * PUBLISH's receiver count and PUBSUB NUMSUB count the agent's subscribers, as one server would.
   */
  pubsubHome(): number;
}

export type Lane = (node: number) => NodeConnection;
export type Done = (reply: Buffer | RedisReplyError) => void;
/** Sends one command to its slot's node (or `pick`'s, for slot -1) on `lane`, answered through `done`. */
export type SlotSend = (
  raw: Buffer,
  slot: number,
  idempotent: boolean,
  lane: Lane,
  done: Done,
  pick?: () => number,
) => boolean;

const MAX_REDIRECTS = 16;
const EMPTY = Buffer.alloc(0);
const ERROR = 0x2d; // '-'
const BLOB_ERROR = 0x21; // '!'
const enum Ch {
  A = 0x41,
  C = 0x43,
  L = 0x4c,
  M = 0x4d,
  T = 0x54,
}

type Redirect = 'moved' | 'ask' | 'retry' | undefined;

/**
 * Classifies an error frame by its prefix bytes, without decoding it: a simple error (`-MOVED ...`) or,
 * in RESP3, a blob error (`!len MOVED ...`) — the same words, treated the same (a module's command
 * may answer either).
 */
export function redirectKind(frame: Buffer): Redirect {
  if (!isErrorFrame(frame)) return undefined;
  return errorRedirectKind(frame);
}

function errorRedirectKind(frame: Buffer): Redirect {
  const at = errorTextStart(frame);
  const c = frame[at];
  const is = (word: string) => frame.toString('latin1', at, at + word.length) === word;
  if (c === Ch.M && is('MOVED ')) return 'moved';
  if (c === Ch.A && is('ASK ')) return 'ask';
  if (c === Ch.T && is('TRYAGAIN')) return 'retry';
  if (c === Ch.C && is('CLUSTERDOWN')) return 'retry';
  if (c === Ch.L && is('LOADING')) return 'retry';
  return undefined;
}

export interface SendSpec {
  raw: Buffer;
  /** Slot of the command's keys; -1 for commands routed by `pick` or to any node. */
  slot: number;
  /** For keyless commands aimed at one node (fan-out, SCAN): re-evaluated on every attempt. */
  pick?: () => number;
  /** Safe to resend after a connection loss in flight (the command cannot have changed data). */
  idempotent: boolean;
  lane: Lane;
  done: Done;
  /** Told about a connection whose write buffer is full. */
  onFull?: (conn: NodeConnection) => void;
}

/** A command's redirects and retries so far, and the node an ASK sends its next attempt to. */
class Again {
  redirects = 0;
  retries = 0;
  startedAt = 0;
  askNode = NO_NODE;
}

/**
 * One command on its way to the node owning its slot (see the file header), answered through
 * `finish`: by a callback (RoutedSend), or by the session's place for the reply (router.ts's plain
 * commands, which need no closure of their own, and whose objects are reused: plain.ts). The command
 * is `bytes[from, to)`, in place in the chunk it came in (which stays valid: parsed bytes are never
 * overwritten), and the node connection hands its reply to this object (ReplyTaker), in place in the
 * node's chunk.
 */
export abstract class Routed implements ReplyTaker {
  /** Where the last attempt went: a redirect's refresh asks that node first. */
  private node = NO_NODE;
  /** Made by the first redirect or retry: most commands need none. */
  private again: Again | undefined;

  constructor(
    private readonly ctx: SendContext,
    private bytes: Buffer,
    private from: number,
    private to: number,
    private slot: number,
    private idempotent: boolean,
    private lane: Lane,
    private readonly onFull: ((conn: NodeConnection) => void) | undefined,
  ) {}

  /** Makes this object the next command's, with nothing of the last one left (it has finished). */
  rearm(bytes: Buffer, from: number, to: number, slot: number, idempotent: boolean, lane: Lane): void {
    this.bytes = bytes;
    this.from = from;
    this.to = to;
    this.slot = slot;
    this.idempotent = idempotent;
    this.lane = lane;
    this.node = NO_NODE;
    this.again = undefined;
  }

  /** Lets go of the command's chunk once finished (a reused object must not pin client memory). */
  protected forget(): void {
    this.bytes = EMPTY;
  }

  /** Where a keyless command (slot -1) goes. */
  protected keyless(): number {
    return this.ctx.anyNode();
  }

  /**
   * The reply the client may see (or the error that ends the attempts), `reply[start, end)` when
   * a range is given (a node's reply in place), else all of it; called once.
   */
  protected abstract finish(reply: Buffer | RedisReplyError, start?: number, end?: number): void;

  /** First attempt; false when the connection's buffers are full. */
  start(): boolean {
    return this.attempt();
  }

  private target(): number {
    const ask = this.again?.askNode ?? NO_NODE;
    if (ask !== NO_NODE) return ask;
    const slot = this.slot;
    if (slot < 0) return this.keyless();
    const owner = this.ctx.topology.ownerOf(slot);
    // Before the first refresh lands, any node will do: its MOVED teaches us the owner.
    return owner === NO_NODE ? this.ctx.anyNode() : owner;
  }

  private attempt(): boolean {
    this.node = this.target();
    const conn = this.lane(this.node);
    const again = this.again;
    const asking = again !== undefined && again.askNode !== NO_NODE;
    if (asking) again.askNode = NO_NODE;
    const { bytes, from, to } = this;
    const ok = asking ? conn.sendAskingAt(bytes, from, to, this) : conn.sendAt(bytes, from, to, this);
    if (!ok) this.onFull?.(conn);
    return ok;
  }

  /** The node's reply `bytes[start, end)`: the client's unless it is a redirect or a retry. */
  replyAt(bytes: Buffer, start: number, end: number): void {
    const first = bytes[start];
    // Only an error frame may redirect: anything else goes out without a Buffer of its own.
    if (first !== ERROR && first !== BLOB_ERROR) return this.finish(bytes, start, end);
    const frame = bytes.subarray(start, end);
    const kind = errorRedirectKind(frame);
    if (kind === undefined) return this.finish(frame);
    this.redirected(frame, kind);
  }

  unavailable(reply: NodeUnavailable): void {
    if (reply.error instanceof NodeTimeoutError) {
      // A retry would wait on the same silent node again; the client decides.
      this.finish(timeoutReply(reply.error));
      return;
    }
    if (reply.error instanceof Resp3RefusedError) {
      // Every RESP3 connection to the node would be refused alike (the router answers HELLO 3 NOPROTO).
      this.finish(new RedisReplyError('ERR', `${reply.error.message} (hint: ${reply.error.hint})`));
      return;
    }
    if (!reply.sent || this.idempotent) {
      void this.ctx.topology.refresh();
      this.retryLater(reply.error.message);
    } else {
      this.finish(
        new RedisReplyError(
          'ERR',
          `${reply.error.message} while the command was in flight; it may or may not have been applied (failover?) — check and retry`,
        ),
      );
    }
  }

  /** A MOVED, ASK, TRYAGAIN, CLUSTERDOWN or LOADING error frame came back. */
  private redirected(reply: Buffer, kind: NonNullable<Redirect>): void {
    const script = scriptCall(this.bytes.subarray(this.from, this.to), this.ctx);
    if (script !== undefined) {
      // Text the script may have chosen (redis.error_reply('TRYAGAIN'), 'MOVED 0 evil:1') after its
      // writes: following or retrying it would run the script again, dial where it says, and audit
      // one command for many runs. A real redirect, TRYAGAIN or CLUSTERDOWN looks the same; the
      // script did not run then, and the client retries it as it would any error.
      this.ctx.refusedRedirect('script', { kind, command: script });
      this.finish(reply);
      return;
    }
    if (kind === 'retry') {
      this.retryLater(errorText(reply), reply);
      return;
    }
    const redirect = parseRedirect(reply);
    const again = (this.again ??= new Again());
    if (!redirect || ++again.redirects > MAX_REDIRECTS) {
      this.finish(new RedisReplyError('ERR', `too many cluster redirections (last: ${errorText(reply)})`));
      return;
    }
    confirmRedirect(this.ctx, redirect, this.node, (node) => {
      if (node === undefined) {
        this.finish(unconfirmedError(redirect));
        return;
      }
      if (redirect.kind === 'ask') again.askNode = node;
      this.attempt();
    });
  }

  /** Backs off 10, 20, 40 ... 500 ms, for at most the retry budget; then the last error goes out. */
  private retryLater(why: string, lastFrame?: Buffer): void {
    const now = Date.now();
    const again = (this.again ??= new Again());
    if (again.startedAt === 0) again.startedAt = now;
    if (now - again.startedAt >= this.ctx.retryBudgetMs) {
      this.ctx.log.warn({ why, budgetMs: this.ctx.retryBudgetMs }, 'cluster command gave up retrying');
      this.finish(
        lastFrame ?? new RedisReplyError('CLUSTERDOWN', `${why}; gave up after ${this.ctx.retryBudgetMs} ms`),
      );
      return;
    }
    const delay = Math.min(500, 10 * 2 ** again.retries++);
    setTimeout(() => this.attempt(), delay);
  }
}

/** A routed command answered through a callback. */
export class RoutedSend extends Routed {
  private readonly done: Done;
  private readonly pick: (() => number) | undefined;

  constructor(ctx: SendContext, spec: SendSpec) {
    const raw = spec.raw;
    super(ctx, raw, 0, raw.length, spec.slot, spec.idempotent, spec.lane, spec.onFull);
    this.done = spec.done;
    this.pick = spec.pick;
  }

  protected override keyless(): number {
    return this.pick ? this.pick() : super.keyless();
  }

  protected override finish(reply: Buffer | RedisReplyError, start?: number, end?: number): void {
    this.done(start === undefined ? reply : (reply as Buffer).subarray(start, end));
  }
}
