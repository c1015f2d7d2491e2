// A cluster session's hot path: commands of one slot that need nothing but the connection to that
// slot's node — GET, SET, HSET, INCR ..., the bulk of any workload. Whether a command is one is
// decided once per command name (from its rules), and each is sent as one object that carries the
// session's place for its reply, instead of a callback (and the closures it captures) per command.
// Everything else takes the router's general path (router.ts route()), which sends these the same way.
import { SUBSCRIBE_COMMANDS } from '../pubsub-tracker.js';
import type { RedisReplyError } from '../router.js';
import type { CommandRules } from './command-rules.js';
import type { NodeConnection } from './node-connection.js';
import { type Lane, Routed, type SendContext } from './sender.js';
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

export class PlainSend extends Routed {
  constructor(
    ctx: SendContext,
    bytes: Buffer,
    from: number,
    to: number,
    slot: number,
    kind: Plain,
    lane: Lane,
    onFull: (conn: NodeConnection) => void,
    private readonly owner: PlainOwner,
    private readonly seq: number,
    private readonly n: number,
  ) {
    super(ctx, bytes, from, to, slot, kind === Plain.Read, lane, onFull);
  }

  protected override finish(reply: Buffer | RedisReplyError, start?: number, end?: number): void {
    this.owner.answered(this.seq, this.n, reply, start, end);
  }
}
