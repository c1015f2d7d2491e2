// The cluster router: one per client session, over the connections its ClusterService shares. The
// client sees one ordinary Redis; each command goes where Redis Cluster needs it:
//
//   command ─┬─ in a transaction / MULTI EXEC WATCH ─────▶ Transaction (pinned dedicated connection)
//            ├─ subscribe family / subscribed mode ──────▶ PubSub (own subscribed connections)
//            ├─ connection state (ASKING, CLIENT SETNAME) ▶ answered here: shared connections stay clean
//            ├─ SCAN ────────────────────────────────────▶ one master at a time, cursor names which
//            ├─ request_policy all_shards / all_nodes ───▶ every master (node), replies merged
//            ├─ keys in several slots ───────────────────▶ split per slot (MGET, MSET, DEL ...) or CROSSSLOT
//            ├─ blocking (BLPOP, XREAD BLOCK) ───────────▶ session's dedicated connection to the slot owner
//            └─ everything else ─────────────────────────▶ shared pipelined connection to the slot owner
//
// Replies may complete out of order (the session restores it), but execution order is kept where a
// single connection would have kept it: a command that leaves the shared connection (blocking, WATCH,
// EXEC) waits for the session's earlier commands and holds later ones until it is answered.
import type { DrawbridgeError } from '../../../errors.js';
import type { RedisCommand } from '../parser.js';
import { SUBSCRIBE_COMMANDS } from '../pubsub-tracker.js';
import { decodeReply } from '../reply-parser.js';
import { RedisReplyError, type BackendLogin, type Router } from '../router.js';
import { OK, NULL_BULK, RESET, bulkReply, encodeCommand } from '../serializer.js';
import { blockingReplyLimitMs } from './blocking.js';
import { type CommandRules, keyPositions } from './command-rules.js';
import { fanOut, scan } from './fan-out.js';
import { SPLITTABLE, mergeSplit, splitBySlot } from './multi-key.js';
import type { NodeConnection } from './node-connection.js';
import type { LoginPool } from './pool.js';
import { PubSub } from './pubsub.js';
import { type Done, type Lane, RoutedSend } from './sender.js';
import type { ClusterService } from './service.js';
import { CROSS_SLOT, KEYLESS, commandSlot, crossSlotError, slotOfKeys } from './slots.js';
import { TRANSACTION_COMMANDS, Transaction } from './transaction.js';
import type { Reply } from './merge.js';

/** A session holding more commands than this behind a barrier stops reading its client. */
const MAX_HELD = 1024;
/**
 * WAIT holds the node's shared connection, so its timeout is capped (0 = "forever" becomes this).
 * It cannot move to a dedicated connection like BLPOP: WAIT waits for the writes made on the
 * connection it runs on, and a session's writes went over the shared one; on a dedicated connection
 * with no writes it would return at once, promising durability it never checked.
 */
const MAX_WAIT_MS = 1000;

type Held = [RedisCommand, Done];

export class ClusterRouter implements Router {
  private pool: LoginPool;
  private readonly tx: Transaction;
  private readonly pubsub: PubSub;
  private readonly blocking = new Map<number, NodeConnection>();
  private readonly shared: Lane;
  private inFlight = 0;
  private held: Held[] | undefined;
  private clientName: Buffer | undefined;
  private closed = false;
  private pushTo: (frame: Buffer) => void = () => {};
  private drained: () => void = () => {};
  private failed: (err: DrawbridgeError) => void = () => {};
  private waitingDrain = false;

  constructor(
    private readonly service: ClusterService,
    pool: LoginPool,
  ) {
    this.pool = pool;
    this.shared = (node) => this.pool.sharedTo(node);
    const host = {
      ctx: service,
      pool: () => this.pool,
      onFull: this.onFull,
      push: (frame: Buffer) => this.pushTo(frame),
      fail: (err: DrawbridgeError) => this.failed(err),
    };
    this.tx = new Transaction(host);
    this.pubsub = new PubSub(host);
  }

  dispatch(cmd: RedisCommand, done: Done): boolean {
    if (this.closed) return true;
    if (this.held) {
      this.held.push([cmd, done]);
      return this.held.length < MAX_HELD;
    }
    if (this.isBarrier(cmd)) {
      if (this.inFlight > 0) {
        this.held = [[cmd, done]];
        return true;
      }
      this.held = [];
    }
    this.inFlight++;
    return this.route(cmd, (reply) => {
      if (this.closed) return;
      done(reply);
      if (--this.inFlight === 0 && this.held) this.release();
    });
  }

  onPush(handler: (frame: Buffer) => void): void {
    this.pushTo = handler;
  }

  onDrain(handler: () => void): void {
    this.drained = handler;
  }

  onFailure(handler: (err: DrawbridgeError) => void): void {
    this.failed = handler;
  }

  /** New connections log in as `login`; a transaction or subscription in progress finishes as before. */
  async relogin(login: BackendLogin): Promise<void> {
    const next = this.service.join(login);
    try {
      await this.service.ready(next);
    } catch (err) {
      this.service.leave(next);
      throw err;
    }
    this.releaseBlocking();
    this.service.leave(this.pool);
    this.pool = next;
  }

  /** RESET is answered here, never sent (see dispatch), and Redis Cluster has only DB 0. */
  restore(login: BackendLogin): Promise<void> {
    return this.relogin(login);
  }

  pause(): void {
    this.pubsub.pause();
    for (const c of this.blocking.values()) c.pause();
  }

  resume(): void {
    this.pubsub.resume();
    for (const c of this.blocking.values()) c.resume();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.held = undefined;
    this.tx.reset();
    this.pubsub.close();
    this.releaseBlocking();
    this.service.leave(this.pool);
  }

  /** Commands that leave the shared connection and must not overtake, or be overtaken by, others. */
  private isBarrier(cmd: RedisCommand): boolean {
    const n = cmd.name;
    if (n === 'exec' || n === 'watch') return true;
    if (this.tx.queueing || this.pubsub.subscribed) return false;
    const rules = this.service.rules(n);
    return rules !== undefined && (this.isBlocking(cmd, rules) || rules.needsGetKeys);
  }

  private release(): void {
    const queue = this.held!;
    this.held = undefined;
    for (let i = 0; i < queue.length; i++) {
      const [cmd, done] = queue[i]!;
      if (this.held) {
        (this.held as Held[]).push(...queue.slice(i));
        return;
      }
      this.dispatch(cmd, done);
    }
    if (!this.held && this.waitingDrain === false) this.drained();
  }

  private route(cmd: RedisCommand, done: Done): boolean {
    const name = cmd.name;
    // RESET ends transactions and subscriptions here; sent on, it would log a pooled connection out.
    if (name === 'reset') return this.reset(done);
    const rules = this.service.rules(name);
    // Between WATCH and MULTI, reads and writes run as usual (WATCH, a barrier, has been answered).
    if (this.tx.queueing || TRANSACTION_COMMANDS.has(name)) return this.tx.dispatch(cmd, rules, done);
    if (SUBSCRIBE_COMMANDS.has(name) || this.pubsub.subscribed) return this.pubsub.dispatch(cmd, done);
    const local = this.local(cmd, done);
    if (local !== undefined) return local;
    if (!rules) return this.send(cmd.raw, KEYLESS, false, this.shared, done);
    if (name === 'publish' || name.startsWith('pubsub|')) {
      return this.send(cmd.raw, KEYLESS, false, this.shared, done, this.pubsubHome);
    }
    if (name === 'scan') return scan({ ctx: this.service, lane: this.shared }, cmd, done);
    if (rules.requestPolicy === 'all_shards' || rules.requestPolicy === 'all_nodes') {
      return fanOut({ ctx: this.service, lane: this.shared }, rules, this.capWait(cmd), done);
    }
    if (rules.needsGetKeys) return this.routeByBackendKeys(cmd, rules, done);
    const slot = commandSlot(cmd, rules);
    if (slot === CROSS_SLOT) {
      if (SPLITTABLE.has(name)) return this.split(cmd, rules, done);
      done(crossSlotError(name));
      return true;
    }
    const lane = this.isBlocking(cmd, rules) ? this.blockingLane(cmd) : this.shared;
    return this.send(cmd.raw, slot, rules.flags.has('readonly'), lane, done);
  }

  private send(
    raw: Buffer,
    slot: number,
    idempotent: boolean,
    lane: Lane,
    done: Done,
    pick?: () => number,
  ): boolean {
    return new RoutedSend(this.service, {
      raw,
      slot,
      pick,
      idempotent,
      lane,
      done,
      onFull: this.onFull,
    }).start();
  }

  private readonly onFull = (conn: NodeConnection): void => this.full(conn);
  private readonly pubsubHome = (): number => this.service.pubsubHome();

  /** Cross-slot MGET/MSET/DEL/UNLINK/EXISTS/TOUCH: one command per slot, in parallel, merged in order. */
  private split(cmd: RedisCommand, rules: CommandRules, done: Done): boolean {
    const positions = keyPositions(rules, cmd.args);
    const step = rules.specs[0]?.find.type === 'range' ? rules.specs[0].find.keyStep : rules.legacy.step;
    const groups = splitBySlot(cmd.args, positions, Math.max(1, step));
    const replies = new Array<Reply>(groups.length);
    let left = groups.length;
    let ok = true;
    groups.forEach((g, i) => {
      ok =
        this.send(encodeCommand(g.args), g.slot, rules.flags.has('readonly'), this.shared, (reply) => {
          replies[i] = reply;
          if (--left === 0) done(mergeSplit(rules.responsePolicy, groups, replies, positions.length));
        }) && ok;
    });
    return ok;
  }

  /** SORT ... STORE, MIGRATE ... KEYS: their keys hide where specs cannot see; the backend knows. */
  private routeByBackendKeys(cmd: RedisCommand, rules: CommandRules, done: Done): boolean {
    const getKeys = encodeCommand(['COMMAND', 'GETKEYS', ...cmd.args]);
    this.send(getKeys, KEYLESS, true, this.shared, (reply) => {
      const keys = Buffer.isBuffer(reply) && reply[0] === 0x2a ? this.keysOf(reply) : undefined;
      const slot = keys ? slotOfKeys(keys) : commandSlot(cmd, rules);
      if (slot === CROSS_SLOT) done(crossSlotError(cmd.name));
      else this.send(cmd.raw, slot, rules.flags.has('readonly'), this.shared, done);
    });
    return true;
  }

  private keysOf(frame: Buffer): Buffer[] | undefined {
    const v = decodeReply(frame);
    return Array.isArray(v) ? v.filter((k): k is Buffer => Buffer.isBuffer(k)) : undefined;
  }

  private isBlocking(cmd: RedisCommand, rules: CommandRules): boolean {
    if (!rules.flags.has('blocking')) return false;
    // XREAD/XREADGROUP carry the flag but block only with a BLOCK option before STREAMS.
    if (cmd.name !== 'xread' && cmd.name !== 'xreadgroup') return true;
    for (let i = 1; i < cmd.args.length; i++) {
      const a = cmd.args[i]!.toString('latin1').toLowerCase();
      if (a === 'streams') return false;
      if (a === 'block') return true;
    }
    return false;
  }

  /** Commands about the connection itself: answered here, since plain commands share connections. */
  private local(cmd: RedisCommand, done: Done): boolean | undefined {
    switch (cmd.name) {
      case 'asking':
      case 'readonly':
      case 'readwrite':
      case 'client|reply': // the session only relays CLIENT REPLY ON
        done(OK);
        return true;
      case 'client|setname':
        this.clientName = cmd.args[2];
        done(
          cmd.args.length === 3
            ? OK
            : new RedisReplyError('ERR', "wrong number of arguments for 'client|setname' command"),
        );
        return true;
      case 'client|getname':
        done(this.clientName?.length ? bulkReply(this.clientName) : NULL_BULK);
        return true;
      case 'hello': {
        // HELLO [2] [SETNAME name]: the name stays with this session, not on a shared connection.
        const at = cmd.args.findIndex((a) => a.toString('latin1').toLowerCase() === 'setname');
        if (at > 0) this.clientName = cmd.args[at + 1];
        const args = at > 0 ? cmd.args.slice(0, at) : cmd.args;
        return this.send(encodeCommand(args), KEYLESS, true, this.shared, done);
      }
      case 'monitor':
      case 'client|tracking':
      case 'client|caching':
      case 'client|no-evict':
      case 'client|no-touch':
        done(
          new RedisReplyError(
            'ERR',
            `'${cmd.name}' changes backend connection state, which cluster sessions share through the agent; run it against a node directly`,
          ),
        );
        return true;
      default:
        return undefined;
    }
  }

  private reset(done: Done): boolean {
    this.tx.reset();
    this.pubsub.reset();
    this.releaseBlocking();
    this.clientName = undefined;
    done(RESET);
    return true;
  }

  /**
   * WAIT n 0 would block the shared connection forever; cap its timeout, below half the command
   * timeout so a WAIT never looks like a hung node.
   */
  private capWait(cmd: RedisCommand): Buffer {
    if (cmd.name !== 'wait' || cmd.args.length !== 3) return cmd.raw;
    const cap = Math.min(MAX_WAIT_MS, Math.floor(this.service.commandTimeoutMs / 2));
    const t = Number(cmd.args[2]!.toString('latin1'));
    if (t > 0 && t <= cap) return cmd.raw;
    return encodeCommand([cmd.args[0]!, cmd.args[1]!, String(cap)]);
  }

  /** The session's dedicated connection, allowed to stay silent as long as this command may block. */
  private blockingLane(cmd: RedisCommand): Lane {
    const limit = blockingReplyLimitMs(cmd, this.service.commandTimeoutMs);
    return (node) => {
      const c = this.dedicated(node);
      c.replyLimitMs = limit;
      return c;
    };
  }

  private dedicated(node: number): NodeConnection {
    let c = this.blocking.get(node);
    if (!c || c.closed) {
      c = this.pool.take(node);
      this.blocking.set(node, c);
    }
    return c;
  }

  private releaseBlocking(): void {
    for (const c of this.blocking.values()) {
      c.replyLimitMs = undefined; // back to the command timeout for whoever takes it next
      this.pool.release(c, c.inFlight === 0);
    }
    this.blocking.clear();
  }

  private full(conn: NodeConnection): void {
    if (this.waitingDrain) return;
    this.waitingDrain = true;
    conn.onDrain(() => {
      this.waitingDrain = false;
      if (!this.closed) this.drained();
    });
  }
}
