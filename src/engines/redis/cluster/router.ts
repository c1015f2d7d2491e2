// The cluster router: one per client session, over the connections its ClusterService shares. The
// client sees one ordinary Redis; each command goes where Redis Cluster needs it:
//
//   command ─┬─ in a transaction / MULTI EXEC WATCH ─────▶ Transaction (pinned dedicated connection)
//            ├─ subscribe family / subscribed mode ──────▶ PubSub (own subscribed connections)
//            ├─ connection state (ASKING, CLIENT SETNAME) ▶ answered here: shared connections stay clean
//            ├─ CLIENT TRACKING on (RESP3) ──────────────▶ everything below on the session's own
//            │                                              tracking connections instead (tracking.ts)
//            ├─ SCAN ────────────────────────────────────▶ one master at a time, cursor names which
//            ├─ PUBSUB SHARDCHANNELS/SHARDNUMSUB ────────▶ every master, lists joined, counts summed
//            ├─ request_policy all_shards / all_nodes ───▶ every master (node), replies merged
//            ├─ keys in several slots ───────────────────▶ split per slot (MGET, MSET, DEL ...) or CROSSSLOT
//            ├─ blocking (BLPOP, XREAD BLOCK) ───────────▶ session's dedicated connection to the slot owner
//            └─ everything else ─────────────────────────▶ shared pipelined connection to the slot owner
//
// Replies may complete out of order (the session restores it), but execution order is kept where a
// single connection would have kept it: a command that leaves the shared connection (blocking, WATCH,
// EXEC) waits for the session's earlier commands and holds later ones until it is answered.
import type { DrawbridgeError } from '../../../errors.js';
import { type RedisCommand, owned } from '../parser.js';
import { SUBSCRIBE_COMMANDS } from '../pubsub-tracker.js';
import { errorText } from '../reply-parser.js';
import { RedisReplyError, type BackendLogin, type ReplyHandler, type Router } from '../router.js';
import {
  OK,
  RESET,
  type RespVersion,
  bulkReply,
  encodeCommand,
  errorReply,
  nullReply,
} from '../serializer.js';
import { BlockingLanes, capWait, isBlocking } from './blocking.js';
import type { CommandRules } from './command-rules.js';
import { type FanOutTarget, fanOut, scan, shardPubsub } from './fan-out.js';
import { SPLITTABLE, sendSplit } from './multi-key.js';
import type { NodeConnection } from './node-connection.js';
import type { LoginPool } from './pool.js';
import { LOCAL_COMMANDS, Plain, type PlainOwner, PlainSends, plainKind } from './plain.js';
import { PubSub } from './pubsub.js';
import { type Done, type Lane, RoutedSend, type SlotSend } from './sender.js';
import type { ClusterService } from './service.js';
import { CROSS_SLOT, KEYLESS, commandSlot, crossSlotError, sendByBackendKeys } from './slots.js';
import { PushOrder } from './push-order.js';
import { Tracking } from './tracking.js';
import { TRANSACTION_COMMANDS, Transaction } from './transaction.js';
import { isErrorReply } from './merge.js';

/** A session holding more commands than this behind a barrier stops reading its client. */
const MAX_HELD = 1024;

type Held = [RedisCommand, Done];

export class ClusterRouter implements Router, PlainOwner {
  private pool: LoginPool;
  private readonly tx: Transaction;
  private readonly pubsub: PubSub;
  private readonly blocking: BlockingLanes;
  private readonly tracking: Tracking;
  private readonly order: PushOrder;
  private readonly unlisten: () => void;
  private readonly shared: Lane;
  private readonly plain: PlainSends;
  private held: Held[] | undefined;
  private clientName: Buffer | undefined;
  /** The session's protocol: set by HELLO, back to RESP2 by RESET (as on one server). */
  private protocol: RespVersion;
  private closed = false;
  private pushTo: (frame: Buffer) => void = () => {};
  private replied: ReplyHandler = () => {};
  private drained: () => void = () => {};
  private failed: (err: DrawbridgeError) => void = () => {};
  private waitingDrain = false;

  constructor(
    private readonly service: ClusterService,
    pool: LoginPool,
  ) {
    this.pool = pool;
    this.protocol = pool.protocol;
    this.shared = (node) => this.pool.sharedTo(node);
    this.plain = new PlainSends(service, this.onFull, this);
    this.order = new PushOrder((frame) => this.pushTo(frame));
    const host = {
      ctx: service,
      pool: () => this.pool,
      onFull: this.onFull,
      push: (frame: Buffer) => this.order.push(frame),
      fail: (err: DrawbridgeError) => this.failed(err),
    };
    // Transactions and blocking commands borrow through Tracking: its connections while it is on.
    this.tracking = new Tracking(host);
    this.tx = new Transaction({ ...host, lender: this.tracking });
    this.pubsub = new PubSub(host);
    this.pubsub.protocol = pool.protocol;
    this.blocking = new BlockingLanes(this.tracking, service.commandTimeoutMs);
    this.unlisten = service.onReshape(() => this.tracking.reshaped());
  }

  /** dispatchSeq reads a plain command during the call; dispatch keeps owned(cmd) (held, queued, ...). */
  readonly borrowsCommands = true;

  dispatch(borrowed: RedisCommand, done: Done): boolean {
    if (this.closed) return true;
    const cmd = owned(borrowed);
    if (this.held) {
      this.held.push([cmd, done]);
      return this.held.length < MAX_HELD;
    }
    const rules = this.service.rules(cmd.name);
    if (this.isBarrier(cmd, rules)) {
      if (this.order.pending > 0) {
        this.held = [[cmd, done]];
        return true;
      }
      this.held = [];
    }
    const n = this.order.sent();
    return this.route(cmd, rules, (reply) => {
      if (this.closed) return;
      done(reply);
      this.settled(n);
    });
  }

  /** The hot path (plain.ts): a plain command goes to its node as one object, no closure per command. */
  dispatchSeq(cmd: RedisCommand, seq: number): boolean {
    const rules = this.service.rules(cmd.name);
    const kind =
      rules && !this.held && !this.tx.queueing && !this.pubsub.subscribed ? plainKind(rules) : Plain.No;
    const slot = kind === Plain.No ? CROSS_SLOT : commandSlot(cmd, rules!);
    if (slot === CROSS_SLOT || this.closed) return this.dispatchTo(cmd, seq);
    const lane = this.tracking.on ? this.tracking.nextLane() : this.shared;
    const n = this.order.sent();
    // In place in the client's chunk when the parser made it (no Buffer per command).
    const { bytes = cmd.raw, offset = 0, end = bytes.length } = cmd;
    return this.plain.send(bytes, offset, end, slot, kind, lane, seq, n);
  }

  /** dispatch answering `seq`: its closure made in dispatchSeq would cost every call once one took it. */
  private dispatchTo(cmd: RedisCommand, seq: number): boolean {
    return this.dispatch(cmd, (reply) => this.answered(seq, -1, reply));
  }

  /** Reply for place `seq` (`reply[start, end)` if ranged); `n`: its PushOrder number (-1: dispatch's). */
  answered(seq: number, n: number, reply: Buffer | RedisReplyError, start?: number, end?: number): void {
    if (this.closed) return;
    if (Buffer.isBuffer(reply)) this.replied(seq, reply, start, end);
    else this.replied(seq, errorReply(reply.prefix, reply.message));
    if (n >= 0) this.settled(n);
  }

  /** Command `n` is answered: pushes held behind it may go, and held commands once none is pending. */
  private settled(n: number): void {
    this.order.answer(n);
    if (this.held && this.order.pending === 0) this.release();
  }

  onReply(handler: ReplyHandler): void {
    this.replied = handler;
  }

  onPush(handler: (frame: Buffer) => void): void {
    this.pushTo = handler;
  }

  onPushHeld(handler: (bytes: number) => void): void {
    this.order.onHeld = handler;
  }

  onDrain(handler: () => void): void {
    this.drained = handler;
  }

  onFailure(handler: (err: DrawbridgeError) => void): void {
    this.failed = handler;
  }

  /** New connections log in as `login`; a transaction or subscription in progress finishes as before. */
  async relogin(login: BackendLogin): Promise<void> {
    const next = this.service.join(login, this.protocol);
    try {
      await this.service.ready(next);
    } catch (err) {
      this.service.leave(next);
      throw err;
    }
    this.blocking.release();
    this.service.leave(this.pool);
    this.pool = next;
    this.tracking.relogged();
  }

  /** RESET is answered here, never sent (see dispatch), and Redis Cluster has only DB 0. */
  restore(login: BackendLogin): Promise<void> {
    return this.relogin(login);
  }

  get listening(): boolean {
    return this.pubsub.listening;
  }

  pause(): void {
    this.pubsub.pause();
    this.blocking.pause();
    this.tracking.pause();
  }

  resume(): void {
    this.pubsub.resume();
    this.blocking.resume();
    this.tracking.resume();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.held = undefined;
    this.tx.reset();
    this.pubsub.close();
    this.tracking.off();
    this.unlisten();
    this.blocking.release();
    this.service.leave(this.pool);
  }

  /** Commands that leave the shared connection and must not overtake, or be overtaken by, others. */
  private isBarrier(cmd: RedisCommand, rules: CommandRules | undefined): boolean {
    const n = cmd.name;
    if (n === 'exec' || n === 'watch') return true;
    if (this.tx.queueing || this.pubsub.subscribed) return false;
    return rules !== undefined && (isBlocking(cmd, rules) || rules.needsGetKeys);
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

  private route(cmd: RedisCommand, rules: CommandRules | undefined, done: Done): boolean {
    const name = cmd.name;
    // RESET ends transactions and subscriptions here; sent on, it would log a pooled connection out.
    if (name === 'reset') return this.reset(done);
    // Between WATCH and MULTI, reads and writes run as usual (WATCH, a barrier, has been answered).
    if (this.tx.queueing || TRANSACTION_COMMANDS.has(name)) return this.tx.dispatch(cmd, rules, done);
    if (SUBSCRIBE_COMMANDS.has(name) || this.pubsub.subscribed) return this.pubsub.dispatch(cmd, done);
    const local = this.local(cmd, done);
    if (local !== undefined) return local;
    // Plain commands: the login's shared connections, or the session's own while it tracks. Most of
    // them never get here: dispatchSeq sends them the same way (plain.ts); keep the two in step.
    const lane = this.tracking.on ? this.tracking.nextLane() : this.shared;
    if (!rules) return this.send(cmd.raw, KEYLESS, false, lane, done);
    if (name === 'pubsub|shardchannels' || name === 'pubsub|shardnumsub') {
      return shardPubsub(this.target(lane), cmd, rules, done);
    }
    if (name === 'publish' || name.startsWith('pubsub|')) {
      return this.send(cmd.raw, KEYLESS, false, lane, done, this.pubsubHome);
    }
    if (name === 'scan') return scan(this.target(lane), cmd, done);
    if (rules.requestPolicy === 'all_shards' || rules.requestPolicy === 'all_nodes') {
      return fanOut(this.target(lane), rules, capWait(cmd, this.service.commandTimeoutMs), done);
    }
    if (rules.needsGetKeys) return sendByBackendKeys(this.send, cmd, rules, lane, this.shared, done);
    const slot = commandSlot(cmd, rules);
    if (slot === CROSS_SLOT) {
      if (SPLITTABLE.has(name)) return sendSplit(this.send, cmd, rules, lane, done, this.protocol);
      done(crossSlotError(name));
      return true;
    }
    const to = isBlocking(cmd, rules) ? this.blocking.lane(cmd) : lane;
    return this.send(cmd.raw, slot, rules.flags.has('readonly'), to, done);
  }

  /** Made only for the commands that go to several nodes, not for every routed command. */
  private target(lane: Lane): FanOutTarget {
    return { ctx: this.service, lane, proto: this.protocol, onFull: this.onFull };
  }

  private readonly send: SlotSend = (raw, slot, idempotent, lane, done, pick) =>
    new RoutedSend(this.service, { raw, slot, pick, idempotent, lane, done, onFull: this.onFull }).start();

  private readonly onFull = (conn: NodeConnection): void => this.full(conn);
  private readonly pubsubHome = (): number => this.service.pubsubHome();

  /** Commands about the connection itself: answered here, since plain commands share connections. */
  private local(cmd: RedisCommand, done: Done): boolean | undefined {
    if (!LOCAL_COMMANDS.has(cmd.name)) return undefined;
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
        done(this.clientName?.length ? bulkReply(this.clientName) : nullReply(this.protocol));
        return true;
      case 'hello':
        return this.hello(cmd, done);
      case 'client|tracking':
      case 'client|caching':
        return this.tracking.run(cmd, done, this.tx.pinned);
      case 'monitor':
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

  /**
   * HELLO [2|3] [SETNAME name] (the session took AUTH out): the name stays with this session, not on a shared
   * connection. A protocol change moves the session to the pool of that protocol; commands already sent
   * answer in the old one, as on one server. The node's own HELLO answer goes back, in the new protocol. When
   * the nodes refuse RESP3 (Redis 5, an ACL without HELLO) the session stays in RESP2 and the client gets
   * NOPROTO, on which RESP3-first clients (ioredis 6, node-redis) fall back to RESP2 instead of failing.
   */
  private hello(cmd: RedisCommand, done: Done): boolean {
    const at = cmd.args.findIndex((a) => a.toString('latin1').toLowerCase() === 'setname');
    const args = at > 0 ? cmd.args.slice(0, at) : cmd.args;
    const version = args.length > 1 ? Number(args[1]!.toString('latin1')) : this.protocol;
    if (version !== this.protocol && (version === 2 || version === 3)) {
      if (this.tx.pinned || this.tracking.on) {
        done(
          new RedisReplyError(
            'ERR',
            'HELLO cannot switch protocols while WATCH or CLIENT TRACKING holds cluster node connections of this session through the agent; UNWATCH (or EXEC) / CLIENT TRACKING OFF first',
          ),
        );
        return true;
      }
      const before = this.protocol;
      this.switchProtocol(version);
      if (at > 0) this.clientName = cmd.args[at + 1];
      return this.send(encodeCommand(args), KEYLESS, true, this.shared, (reply) => {
        if (!isErrorReply(reply)) return done(reply);
        if (this.protocol === version) this.switchProtocol(before);
        const why = Buffer.isBuffer(reply) ? errorText(reply) : reply.message;
        done(new RedisReplyError('NOPROTO', `RESP${version} is not available on this cluster: ${why}`));
      });
    }
    if (at > 0) this.clientName = cmd.args[at + 1];
    return this.send(encodeCommand(args), KEYLESS, true, this.shared, done);
  }

  /** Moves the session to its login's pool of protocol `p` (no round trip: the login is proven). */
  private switchProtocol(p: RespVersion): void {
    if (p === this.protocol) return;
    const next = this.service.join(this.pool.login, p);
    this.blocking.release();
    this.service.leave(this.pool);
    this.pool = next;
    this.protocol = p;
    this.pubsub.protocol = p;
  }

  private reset(done: Done): boolean {
    this.tx.reset();
    this.pubsub.reset();
    this.tracking.off();
    this.blocking.release();
    this.switchProtocol(2);
    this.clientName = undefined;
    done(RESET);
    return true;
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
