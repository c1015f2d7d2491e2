// MULTI/EXEC/WATCH on a cluster. A transaction runs on one node, so it is pinned to the node of its
// first key on a dedicated connection (WATCH pins at once; MULTI waits for the first keyed command,
// answering QUEUED for keyless ones and replaying them when it pins). A key of another slot inside
// the transaction gets CROSSSLOT and the transaction is discarded on the node at once, so EXEC can
// only answer EXECABORT: nothing of it ever runs.
//
// If the pinned slot moves before EXEC (MOVED/ASK/TRYAGAIN), nothing has run yet — Redis discards a
// transaction it refuses — so without WATCH the agent replays MULTI + the queued commands on the new
// owner. With WATCH the guarantee cannot move with it: EXEC answers nil, exactly as if a watched key
// had changed, and the client's optimistic-locking loop retries.
//
// A script inside the transaction cannot trigger a replay: its errors are elements of EXEC's array
// (never read here), and the replies acted on — queueing answers, EXEC's own error — come before
// anything has run.
import type { RedisCommand } from '../parser.js';
import { isErrorFrame } from '../reply-parser.js';
import { RedisReplyError } from '../router.js';
import { EXECABORT, OK, QUEUED, encodeCommand } from '../serializer.js';
import type { CommandRules } from './command-rules.js';
import { NodeTimeoutError, timeoutReply } from './hung-nodes.js';
import { type NodeConnection, NodeUnavailable, type ReplyHandler } from './node-connection.js';
import { nullArray } from './protocol.js';
import { confirmRedirect, parseRedirect, unconfirmedError } from './redirect.js';
import { type Done, type SendContext, redirectKind } from './sender.js';
import { CROSS_SLOT, KEYLESS, commandSlot, crossSlotError } from './slots.js';
import type { Lender } from './tracking.js';

/**
 * Refused in a transaction: they would change the state of a connection the session only borrows
 * (a pooled one would carry tracking on to the next session); the session runs them outside one.
 */
const CONNECTION_STATE: ReadonlySet<string> = new Set(['client|tracking', 'client|caching']);
const MULTI = encodeCommand(['MULTI']);
const DISCARD = encodeCommand(['DISCARD']);
/** Moves of one transaction the agent follows before giving up with TRYAGAIN. */
const MAX_REPLAYS = 5;
/**
 * What one transaction may queue in the agent (kept for a replay), each command counted QUEUED_COST
 * bytes over its size: Redis bounds no MULTI, and the agent answers QUEUED itself before a keyed
 * command pins it, so without a bound a client's MULTI grew the agent as fast as it could send.
 */
const MAX_QUEUED_BYTES = 64 << 20;
const QUEUED_COST = 64;

const TOO_LONG =
  `a transaction on a Redis Cluster queues at most ${MAX_QUEUED_BYTES} bytes of commands in the agent ` +
  `(each counted ${QUEUED_COST} bytes over its size): it is discarded; EXEC smaller transactions`;

export interface TransactionHost {
  readonly ctx: SendContext;
  /** The session's Tracking, which lends pool connections unless tracking is on. */
  readonly lender: Lender;
  onFull(conn: NodeConnection): void;
}

export const TRANSACTION_COMMANDS: ReadonlySet<string> = new Set([
  'multi',
  'exec',
  'discard',
  'watch',
  'unwatch',
]);

function arityError(cmd: RedisCommand, rules: CommandRules | undefined): RedisReplyError | undefined {
  if (!rules) return new RedisReplyError('ERR', `unknown command '${cmd.args[0]!.toString('latin1')}'`);
  const n = cmd.args.length;
  if (rules.arity > 0 ? n !== rules.arity : n < -rules.arity) {
    return new RedisReplyError('ERR', `wrong number of arguments for '${cmd.name}' command`);
  }
  return undefined;
}

export class Transaction {
  private conn: NodeConnection | undefined;
  private slot = KEYLESS;
  private watching = false;
  private inMulti = false;
  /** A command was refused while queueing: EXEC can only answer EXECABORT. */
  private aborted = false;
  /** Raw commands queued since MULTI, for replay on (re)pinning. */
  private queued: Buffer[] = [];
  private queuedBytes = 0;
  private replays = 0;
  /** Bumped whenever the pinned connection changes, so late replies from an old one change nothing. */
  private gen = 0;

  constructor(private readonly host: TransactionHost) {}

  /** A node connection is held for this session (WATCH, or MULTI with a keyed command). */
  get pinned(): boolean {
    return this.conn !== undefined;
  }

  /** Commands are being queued (MULTI sent): everything goes to the transaction until EXEC/DISCARD. */
  get queueing(): boolean {
    return this.inMulti;
  }

  dispatch(cmd: RedisCommand, rules: CommandRules | undefined, done: Done): boolean {
    switch (cmd.name) {
      case 'multi':
        return this.multi(cmd, done);
      case 'exec':
        return this.exec(cmd, done);
      case 'discard':
        return this.discard(cmd, done);
      case 'watch':
        return this.watch(cmd, rules, done);
      case 'unwatch':
        if (!this.inMulti) return this.unwatch(cmd, done);
    }
    if (!this.inMulti) {
      done(new RedisReplyError('ERR', `${cmd.name} is not part of a transaction`));
      return true;
    }
    return this.enqueue(cmd, rules, done);
  }

  /** Drops the transaction (session closing, RESET): the connection is closed, nothing runs. */
  reset(): void {
    this.finish(false);
  }

  private multi(cmd: RedisCommand, done: Done): boolean {
    if (this.inMulti) {
      done(new RedisReplyError('ERR', 'MULTI calls can not be nested'));
      return true;
    }
    this.inMulti = true;
    this.aborted = false;
    this.queued = [];
    this.queuedBytes = 0;
    this.replays = 0;
    if (this.conn) return this.send(cmd.raw, done);
    done(OK);
    return true;
  }

  private watch(cmd: RedisCommand, rules: CommandRules | undefined, done: Done): boolean {
    if (this.inMulti) {
      done(new RedisReplyError('ERR', 'WATCH inside MULTI is not allowed'));
      return true;
    }
    const slot = rules ? commandSlot(cmd, rules) : KEYLESS;
    if (slot === KEYLESS) {
      done(
        arityError(cmd, rules) ?? new RedisReplyError('ERR', "wrong number of arguments for 'watch' command"),
      );
      return true;
    }
    if (slot === CROSS_SLOT || (this.conn && slot !== this.slot)) {
      done(crossSlotError('WATCH', 'every watched key'));
      return true;
    }
    const first = !this.conn;
    if (first) this.pin(slot, this.ownerOf(slot), false);
    this.watching = true;
    const gen = this.gen;
    const conn = this.conn!;
    return this.sent(conn, cmd.raw, (reply) => {
      const redirect = reply instanceof NodeUnavailable ? undefined : redirectKind(reply);
      if (gen === this.gen && (redirect || reply instanceof NodeUnavailable)) {
        this.finish(false);
        const target = redirect === 'moved' ? parseRedirect(reply as Buffer) : undefined;
        if (first && target && this.replays++ < MAX_REPLAYS) {
          // The slot moved before anything was watched: watch on its new owner instead.
          confirmRedirect(this.host.ctx, target, conn.node, (node) => {
            if (node === undefined) done(unconfirmedError(target));
            else this.watch(cmd, rules, done);
          });
          return;
        }
      }
      done(this.clientReply(reply, 'the watched slot is moving; retry the transaction'));
    });
  }

  private unwatch(cmd: RedisCommand, done: Done): boolean {
    if (!this.conn) {
      this.watching = false;
      done(OK);
      return true;
    }
    return this.sent(this.conn, cmd.raw, (reply) => {
      this.finish(!(reply instanceof NodeUnavailable));
      done(this.clientReply(reply));
    });
  }

  private enqueue(cmd: RedisCommand, rules: CommandRules | undefined, done: Done): boolean {
    if (this.aborted) {
      done(QUEUED);
      return true;
    }
    const invalid = arityError(cmd, rules);
    if (invalid || cmd.name.endsWith('subscribe') || CONNECTION_STATE.has(cmd.name)) {
      this.abort();
      done(invalid ?? new RedisReplyError('ERR', `${cmd.name} inside MULTI is not supported on a cluster`));
      return true;
    }
    const slot = commandSlot(cmd, rules!);
    if (slot === CROSS_SLOT || (slot !== KEYLESS && this.slot !== KEYLESS && slot !== this.slot)) {
      this.abort();
      done(crossSlotError(cmd.name, 'all keys of a transaction'));
      return true;
    }
    this.queuedBytes += cmd.raw.length + QUEUED_COST;
    if (this.queuedBytes > MAX_QUEUED_BYTES) {
      this.abort();
      this.queued = [];
      done(new RedisReplyError('ERR', TOO_LONG));
      return true;
    }
    if (!this.conn && slot === KEYLESS) {
      this.queued.push(cmd.raw);
      done(QUEUED);
      return true;
    }
    if (!this.conn) this.pin(slot, this.ownerOf(slot), false);
    this.queued.push(cmd.raw);
    const gen = this.gen;
    return this.sent(this.conn!, cmd.raw, (reply) => {
      if (gen !== this.gen) {
        done(QUEUED); // superseded by a replay or abort; EXEC reports the outcome
        return;
      }
      const redirect = reply instanceof NodeUnavailable ? undefined : redirectKind(reply);
      if (redirect && !this.watching && this.replays++ < MAX_REPLAYS) {
        // Nothing ran: move the whole transaction to where the slot is now.
        this.replayAfter(reply as Buffer, redirect);
        done(QUEUED);
        return;
      }
      const out = this.clientReply(reply, 'the slot moved during the transaction; retry it');
      if (!Buffer.isBuffer(out) || isErrorFrame(out)) this.aborted = true;
      done(out);
    });
  }

  private exec(cmd: RedisCommand, done: Done): boolean {
    if (!this.inMulti) {
      done(new RedisReplyError('ERR', 'EXEC without MULTI'));
      return true;
    }
    if (this.aborted) {
      this.finish(false);
      done(EXECABORT);
      return true;
    }
    if (!this.conn) this.pin(KEYLESS, this.host.ctx.anyNode(), false);
    const conn = this.conn!;
    return this.sent(conn, cmd.raw, (reply) => {
      const redirect = reply instanceof NodeUnavailable ? undefined : redirectKind(reply);
      if (redirect) {
        if (this.watching || this.replays++ >= MAX_REPLAYS) {
          this.finish(false);
          done(nullArray(conn.protocol));
          return;
        }
        this.replayAfter(reply as Buffer, redirect, () => this.exec(cmd, done));
        return;
      }
      this.finish(!(reply instanceof NodeUnavailable));
      done(this.clientReply(reply));
    });
  }

  private discard(cmd: RedisCommand, done: Done): boolean {
    if (!this.inMulti) {
      done(new RedisReplyError('ERR', 'DISCARD without MULTI'));
      return true;
    }
    // Over at once: a MULTI pipelined right behind this DISCARD starts a new transaction.
    const conn = this.conn;
    this.conn = undefined;
    this.finish(true);
    if (!conn) {
      done(OK);
      return true;
    }
    const lender = this.host.lender;
    return this.sent(conn, cmd.raw, (reply) => {
      lender.release(conn, !(reply instanceof NodeUnavailable));
      done(this.clientReply(reply));
    });
  }

  /** Takes a dedicated connection to `node`, opening the transaction there if MULTI was sent. */
  private pin(slot: number, node: number, asking: boolean): void {
    const conn = this.host.lender.take(node);
    this.conn = conn;
    this.slot = slot;
    const gen = ++this.gen;
    if (!this.inMulti) return;
    // Replies to the replayed MULTI and commands were already answered (OK/QUEUED); a failure among
    // them makes the node abort EXEC by itself, and the flag makes sure the agent does too.
    const swallow = (reply: Buffer | NodeUnavailable) => {
      if (gen === this.gen && (reply instanceof NodeUnavailable || isErrorFrame(reply))) this.aborted = true;
    };
    if (asking) conn.sendAskingAt(MULTI, 0, MULTI.length, swallow);
    else conn.send(MULTI, swallow);
    for (const raw of this.queued) conn.send(raw, swallow);
  }

  /** After a redirect of a queued command or EXEC: discard here, replay on the slot's owner. */
  private replayAfter(reply: Buffer, kind: 'moved' | 'ask' | 'retry', then?: () => void): void {
    const slot = this.slot;
    const from = this.conn?.node;
    this.detach();
    const gen = this.gen;
    // The replay includes the command that was redirected (it is the last one queued). Skipped when
    // the transaction ended or re-pinned meanwhile (a later command pinned it and replayed all).
    const go = (askNode?: number) => {
      if (gen === this.gen) this.pin(slot, askNode ?? this.ownerOf(slot), askNode !== undefined);
      then?.();
    };
    if (kind === 'retry') {
      setTimeout(go, 50);
      return;
    }
    const target = parseRedirect(reply);
    if (!target || from === undefined) go();
    // A followed MOVED has patched the table; a refused target leaves the owner the table names.
    else confirmRedirect(this.host.ctx, target, from, (node) => go(kind === 'ask' ? node : undefined));
  }

  private ownerOf(slot: number): number {
    const owner = slot === KEYLESS ? -1 : this.host.ctx.topology.ownerOf(slot);
    return owner < 0 || owner === 0xffff ? this.host.ctx.anyNode() : owner;
  }

  /** A refused command: discard on the node now so nothing can run; EXEC will say EXECABORT. */
  private abort(): void {
    this.aborted = true;
    this.detach();
  }

  /** Unpins: DISCARD (which also drops WATCHes) and give the connection back once it answers. */
  private detach(): void {
    const conn = this.conn;
    this.conn = undefined;
    this.gen++;
    if (!conn) return;
    const lender = this.host.lender;
    conn.send(DISCARD, (reply) => lender.release(conn, !(reply instanceof NodeUnavailable)));
  }

  private finish(clean: boolean): void {
    const conn = this.conn;
    this.conn = undefined;
    this.gen++;
    if (conn) this.host.lender.release(conn, clean);
    this.slot = KEYLESS;
    this.watching = this.inMulti = this.aborted = false;
    this.queued = [];
    this.queuedBytes = 0;
  }

  private send(raw: Buffer, done: Done): boolean {
    return this.sent(this.conn!, raw, (reply) => done(this.clientReply(reply)));
  }

  /** Sends `raw` on `conn`; when that fills it, the session is told to stop reading until it drains. */
  private sent(conn: NodeConnection, raw: Buffer, handler: ReplyHandler): boolean {
    const ok = conn.send(raw, handler);
    if (!ok) this.host.onFull(conn);
    return ok;
  }

  /** What the client sees: never a redirect, and a lost connection as an error saying what happened. */
  private clientReply(
    reply: Buffer | NodeUnavailable,
    movedText = 'the slot moved; retry',
  ): Buffer | RedisReplyError {
    if (reply instanceof NodeUnavailable) {
      if (reply.error instanceof NodeTimeoutError) return timeoutReply(reply.error);
      return new RedisReplyError('ERR', `${reply.error.message}; the transaction may or may not have run`);
    }
    return redirectKind(reply) ? new RedisReplyError('TRYAGAIN', movedText) : reply;
  }
}
