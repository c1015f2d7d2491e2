// A cluster session's hot path: commands of one slot that need nothing but the connection to that
// slot's node — GET, SET, HSET, INCR ..., the bulk of any workload. Whether a command is one is
// decided once per command name (from its rules), and each is sent as one object that carries the
// session's place for its reply, instead of a callback (and the closures it captures) per command;
// the session reuses these objects once answered, so a command allocates none.
// Everything else takes the router's general path (router.ts route()), which sends these the same way.
import { SUBSCRIBE_COMMANDS } from '../pubsub-tracker.js';
import type { RedisReplyError } from '../router.js';
import type { CommandRules } from './command-rules.js';
import type { NodeConnection } from './node-connection.js';
import { type Lane, Routed, type SendContext } from './sender.js';
import { KEYLESS } from './slots.js';
import { TRANSACTION_COMMANDS } from './transaction.js';

/** The commands router.ts answers itself (its local()): connection state stays off shared connections. */
export const LOCAL_COMMANDS: ReadonlySet<string> = new Set([
  'asking',
  'readonly',
  'readwrite',
  'client|reply',
  'client|setname',
  'client|getname',
  'hello',
  'client|tracking',
  'client|caching',
  'monitor',
  'client|no-evict',
  'client|no-touch',
]);

export const enum Plain {
  No,
  Write,
  /** A `readonly` command: resent after a connection loss in flight. */
  Read,
}

/**
 * Whether route() sends commands of these rules straight to their slot's node on the session's lane
 * (outside a transaction or RESP2 subscribed mode, with nothing held): not answered by the router,
 * not a transaction, subscribe, PUBLISH/PUBSUB, SCAN or RESET command, not fanned out, not blocking
 * (XREAD without BLOCK too, to be safe), with keys the specs find. Keys in several slots still go
 * the general way (split or CROSSSLOT).
 */
export function plainKind(rules: CommandRules): Plain {
  let kind: Plain | undefined = rules.plain;
  if (kind === undefined) {
    const { name, requestPolicy } = rules;
    const special =
      LOCAL_COMMANDS.has(name) ||
      TRANSACTION_COMMANDS.has(name) ||
      SUBSCRIBE_COMMANDS.has(name) ||
      name === 'reset' ||
      name === 'publish' ||
      name.startsWith('pubsub|') ||
      name === 'scan' ||
      requestPolicy === 'all_shards' ||
      requestPolicy === 'all_nodes' ||
      rules.needsGetKeys ||
      rules.flags.has('blocking');
    kind = special ? Plain.No : rules.flags.has('readonly') ? Plain.Read : Plain.Write;
    rules.plain = kind;
  }
  return kind;
}

/** Takes a plain command's reply: `seq` is its place in the session's order, `n` its PushOrder number. */
export interface PlainOwner {
  /** `reply[start, end)` when a range is given (a node's reply in place), else all of it. */
  answered(seq: number, n: number, reply: Buffer | RedisReplyError, start?: number, end?: number): void;
}

const EMPTY = Buffer.alloc(0);
/** Finished PlainSends a session keeps for its next commands: a pipeline of this many allocates none. */
const SPARE = 32;

/**
 * A session's plain commands on their way, each as a PlainSend: one object per command in flight,
 * reused once its reply is handed over (no allocation per command, so no young-generation garbage
 * for it either).
 */
export class PlainSends {
  private readonly spare: PlainSend[] = [];

  constructor(
    private readonly ctx: SendContext,
    private readonly onFull: (conn: NodeConnection) => void,
    private readonly owner: PlainOwner,
  ) {}

  /** Sends `bytes[from, to)` to `slot`'s node on `lane`; its reply goes to the owner's place `seq`. */
  send(
    bytes: Buffer,
    from: number,
    to: number,
    slot: number,
    kind: Plain,
    lane: Lane,
    seq: number,
    n: number,
  ): boolean {
    const send = this.spare.pop() ?? new PlainSend(this.ctx, lane, this.onFull, this.owner, this);
    send.rearm(bytes, from, to, slot, kind === Plain.Read, lane);
    send.answers(seq, n);
    return send.start();
  }

  /** A PlainSend that has finished (nothing refers to it any more): kept for a next command. */
  put(send: PlainSend): void {
    if (this.spare.length < SPARE) this.spare.push(send);
  }
}

class PlainSend extends Routed {
  private seq = 0;
  private n = 0;

  constructor(
    ctx: SendContext,
    lane: Lane,
    onFull: (conn: NodeConnection) => void,
    private readonly owner: PlainOwner,
    private readonly sends: PlainSends,
  ) {
    super(ctx, EMPTY, 0, 0, KEYLESS, false, lane, onFull); // armed before each start
  }

  /** The session's place for this command's reply, and its PushOrder number. */
  answers(seq: number, n: number): void {
    this.seq = seq;
    this.n = n;
  }

  /** Back to the spares before the reply goes on: the session may dispatch its next command at once. */
  protected override finish(reply: Buffer | RedisReplyError, start?: number, end?: number): void {
    const { seq, n } = this;
    this.forget();
    this.sends.put(this);
    this.owner.answered(seq, n, reply, start, end);
  }
}
