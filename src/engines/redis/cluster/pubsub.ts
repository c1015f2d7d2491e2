// Pub/sub for one client session, on its own subscribed connections.
// - SUBSCRIBE/PSUBSCRIBE: Redis Cluster broadcasts PUBLISH to every node, so one connection to one
//   node hears every channel; the session's channels and patterns all live on the "pub/sub home"
//   master, where PUBLISH is sent too (see SendContext.pubsubHome).
// - SSUBSCRIBE: a shard channel is only published on the node owning its slot, so channels are
//   grouped by slot and subscribed on each owner; when a slot moves, the node drops the
//   subscription (an unasked `sunsubscribe`) and the agent re-subscribes on the new owner.
// Confirmations are rebuilt by the agent so their counts are the session's totals, as one server
// would report them; messages are relayed as received. A lost connection is re-established and
// re-subscribed; if that keeps failing past the retry budget, the session ends with the reason.
// RESP3: confirmations and messages are pushes, and a subscribed session may run any command (the
// router routes them as usual; only the subscribe family comes here).
import { DrawbridgeError } from '../../../errors.js';
import type { RedisCommand } from '../parser.js';
import { RedisReplyError } from '../router.js';
import {
  type RespVersion,
  bulkReply,
  encodeCommand,
  encodeValue,
  integerReply,
  nullReply,
} from '../serializer.js';
import { keySlot } from './key-slot.js';
import { type NodeConnection, NodeUnavailable } from './node-connection.js';
import type { LoginPool } from './pool.js';
import { SubscriptionBudget, tooManySubscriptions } from '../pubsub-tracker.js';
import { messageFor } from './protocol.js';
import { groupBy, shardCounts } from './pubsub-groups.js';
import { confirmRedirect, parseRedirect } from './redirect.js';
import { type Done, type SendContext, redirectKind } from './sender.js';
import { type LinkEvents, type LinkOutcome, SubscriberLink } from './subscriber-link.js';
import { NO_NODE } from './topology.js';

export interface PubSubHost {
  readonly ctx: SendContext;
  pool(): LoginPool;
  push(frame: Buffer): void;
  fail(err: DrawbridgeError): void;
  onFull(conn: NodeConnection): void;
}

const MAX_MOVES = 5;

const HEADERS: Record<RespVersion, Buffer> = { 2: Buffer.from('*3\r\n'), 3: Buffer.from('>3\r\n') };

/** `subscribe ch n` as the session's protocol has it: an array (RESP2) or a push (RESP3). */
function confirm(p: RespVersion, type: string, channel: Buffer | null, count: number): Buffer {
  return Buffer.concat([
    HEADERS[p],
    bulkReply(type),
    channel ? bulkReply(channel) : nullReply(p),
    integerReply(count),
  ]);
}

function failure(outcome: LinkOutcome): Buffer | RedisReplyError {
  if (outcome instanceof NodeUnavailable) return new RedisReplyError('ERR', outcome.error.message);
  return outcome!;
}

export class PubSub implements LinkEvents {
  /** Channel bytes as latin1 strings (one char per byte, binary-safe). */
  private readonly channels = new Set<string>();
  private readonly patterns = new Set<string>();
  /** Shard channel → node it is subscribed on. */
  private readonly shards = new Map<string, number>();
  private readonly budget = new SubscriptionBudget();
  private main: SubscriberLink | undefined;
  private readonly shardLinks = new Map<number, SubscriberLink>();
  private pending = 0;
  private paused = false;
  private closed = false;
  /** The session's protocol (HELLO switches it; subscriptions keep the connections they have). */
  protocol: RespVersion = 2;

  constructor(private readonly host: PubSubHost) {}

  /** Subscribed to a channel, pattern or shard channel (either protocol). */
  get listening(): boolean {
    return this.pending > 0 || this.channels.size + this.patterns.size + this.shards.size > 0;
  }

  /**
   * RESP2 subscribed mode: only subscribe-family commands, PING, QUIT and RESET are allowed. RESP3
   * has no such mode.
   */
  get subscribed(): boolean {
    return this.protocol === 2 && this.listening;
  }

  dispatch(cmd: RedisCommand, done: Done): boolean {
    const names = cmd.args.slice(1);
    switch (cmd.name) {
      case 'subscribe':
      case 'psubscribe':
        return this.subscribe(cmd.name, names, done);
      case 'unsubscribe':
      case 'punsubscribe':
        return this.unsubscribe(cmd.name, names, done);
      case 'ssubscribe':
        return this.ssubscribe(names, done);
      case 'sunsubscribe':
        return this.sunsubscribe(names, done);
      case 'ping': {
        done(encodeValue([Buffer.from('pong'), names[0] ?? Buffer.alloc(0)]));
        return true;
      }
      default:
        done(
          new RedisReplyError(
            'ERR',
            `Can't execute '${cmd.name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`,
          ),
        );
        return true;
    }
  }

  pause(): void {
    this.paused = true;
    for (const l of this.links()) l.conn.pause();
  }

  resume(): void {
    this.paused = false;
    for (const l of this.links()) l.conn.resume();
  }

  /** Unsubscribes from everything (RESET); the session can subscribe again afterwards. */
  reset(): void {
    this.channels.clear();
    this.patterns.clear();
    this.shards.clear();
    this.budget.clear();
    this.pending = 0;
    const links = this.links();
    this.main = undefined;
    this.shardLinks.clear();
    for (const l of links) l.close();
  }

  close(): void {
    this.closed = true;
    this.reset();
  }

  // --- LinkEvents ---

  push(frame: Buffer): void {
    this.host.push(messageFor(frame, this.protocol));
  }

  full(conn: NodeConnection): void {
    this.host.onFull(conn);
  }

  evicted(channel: Buffer): void {
    const key = channel.toString('latin1');
    if (!this.shards.has(key)) return;
    this.shards.set(key, NO_NODE);
    void this.host.ctx.topology.refresh().then(() => this.resubscribeShard(channel, 0, Date.now()));
  }

  lost(link: SubscriberLink): void {
    if (this.closed) return;
    if (link === this.main) {
      this.main = undefined;
      // Not from inside the close event: the pool may be closing, and a node needs a moment to fail over.
      if (this.channels.size + this.patterns.size > 0) setTimeout(() => this.resubscribeMain(Date.now()), 50);
      return;
    }
    this.shardLinks.delete(link.node);
    for (const [key, node] of this.shards) {
      if (node === link.node) this.evicted(Buffer.from(key, 'latin1'));
    }
  }

  // --- commands ---

  private subscribe(type: string, names: Buffer[], done: Done): boolean {
    const set = type === 'subscribe' ? this.channels : this.patterns;
    this.pending++;
    return this.mainLink().request(encodeCommand([type, ...names]), names.length, (outcome) => {
      this.pending--;
      if (outcome !== undefined) {
        done(failure(outcome));
        return;
      }
      const frames = names.map((n) => {
        this.budget.add(set, n.toString('latin1'));
        return confirm(this.protocol, type, n, this.channels.size + this.patterns.size);
      });
      if (this.budget.exceeded) return this.host.fail(tooManySubscriptions());
      done(Buffer.concat(frames));
    });
  }

  private unsubscribe(type: string, names: Buffer[], done: Done): boolean {
    const set = type === 'unsubscribe' ? this.channels : this.patterns;
    const targets = names.length > 0 ? names : [...set].map((k) => Buffer.from(k, 'latin1'));
    const reply = () => {
      const frames = targets.map((n) => {
        this.budget.delete(set, n.toString('latin1'));
        return confirm(this.protocol, type, n, this.channels.size + this.patterns.size);
      });
      this.closeIdleMain();
      done(
        frames.length > 0
          ? Buffer.concat(frames)
          : confirm(this.protocol, type, null, this.channels.size + this.patterns.size),
      );
    };
    if (targets.length === 0 || !this.main) {
      reply();
      return true;
    }
    this.pending++;
    return this.main.request(encodeCommand([type, ...targets]), targets.length, (outcome) => {
      this.pending--;
      if (outcome instanceof NodeUnavailable || outcome === undefined) reply();
      else done(failure(outcome));
    });
  }

  private ssubscribe(names: Buffer[], done: Done): boolean {
    if (names.length === 0) {
      done(new RedisReplyError('ERR', "wrong number of arguments for 'ssubscribe' command"));
      return true;
    }
    const bySlot = groupBy(names, keySlot);
    let left = bySlot.size;
    let error: Buffer | RedisReplyError | undefined;
    const counts = shardCounts(names, this.shards);
    this.pending++;
    let ok = true;
    for (const [slot, group] of bySlot) {
      const sent = this.shardSubscribe(slot, group, 0, (outcome, node) => {
        if (outcome !== undefined) error ??= failure(outcome);
        else for (const n of group) this.budget.add(this.shards, n.toString('latin1'), node);
        if (--left > 0) return;
        this.pending--;
        if (this.budget.exceeded) return this.host.fail(tooManySubscriptions());
        if (error) {
          done(error);
          return;
        }
        done(Buffer.concat(names.map((n, i) => confirm(this.protocol, 'ssubscribe', n, counts[i]!))));
      });
      ok &&= sent;
    }
    return ok;
  }

  /** SSUBSCRIBE one slot's channels on its owner, following MOVED a few times. */
  private shardSubscribe(
    slot: number,
    group: Buffer[],
    moves: number,
    done: (outcome: LinkOutcome, node: number) => void,
  ): boolean {
    const owner = this.host.ctx.topology.ownerOf(slot);
    const node = owner === NO_NODE ? this.host.ctx.anyNode() : owner;
    return this.shardLink(node).request(encodeCommand(['SSUBSCRIBE', ...group]), group.length, (outcome) => {
      const kind = Buffer.isBuffer(outcome) ? redirectKind(outcome) : undefined;
      if (kind && moves < MAX_MOVES) {
        const r = kind === 'moved' ? parseRedirect(outcome as Buffer) : undefined;
        const retry = () => this.shardSubscribe(slot, group, moves + 1, done);
        // A refused target leaves the owner the (refreshed) table names for the retry.
        if (r) confirmRedirect(this.host.ctx, r, node, retry);
        else setTimeout(retry, 100);
        return;
      }
      done(outcome, node);
    });
  }

  private sunsubscribe(names: Buffer[], done: Done): boolean {
    const targets = names.length > 0 ? names : [...this.shards.keys()].map((k) => Buffer.from(k, 'latin1'));
    const reply = () => {
      const frames = targets.map((n) => {
        this.budget.delete(this.shards, n.toString('latin1'));
        return confirm(this.protocol, 'sunsubscribe', n, this.shards.size);
      });
      this.closeIdleShardLinks();
      done(
        frames.length > 0
          ? Buffer.concat(frames)
          : confirm(this.protocol, 'sunsubscribe', null, this.shards.size),
      );
    };
    const byNode = groupBy(targets, (n) => {
      const node = this.shards.get(n.toString('latin1'));
      return node !== undefined && this.shardLinks.has(node) ? node : undefined;
    });
    if (byNode.size === 0) {
      reply();
      return true;
    }
    let left = byNode.size;
    let ok = true;
    this.pending++;
    for (const [node, group] of byNode) {
      const link = this.shardLinks.get(node)!;
      const sent = link.request(encodeCommand(['SUNSUBSCRIBE', ...group]), group.length, () => {
        if (--left > 0) return;
        this.pending--;
        reply();
      });
      ok &&= sent;
    }
    return ok;
  }

  // --- links ---

  private links(): SubscriberLink[] {
    return [...(this.main ? [this.main] : []), ...this.shardLinks.values()];
  }

  private mainLink(): SubscriberLink {
    if (!this.main) {
      this.main = new SubscriberLink(this.host.pool(), this.host.ctx.pubsubHome(), this);
      if (this.paused) this.main.conn.pause();
    }
    return this.main;
  }

  private shardLink(node: number): SubscriberLink {
    let link = this.shardLinks.get(node);
    if (!link) {
      link = new SubscriberLink(this.host.pool(), node, this);
      if (this.paused) link.conn.pause();
      this.shardLinks.set(node, link);
    }
    return link;
  }

  private closeIdleMain(): void {
    if (this.main && this.channels.size + this.patterns.size === 0 && this.pending === 0) {
      const main = this.main;
      this.main = undefined;
      main.close();
    }
  }

  private closeIdleShardLinks(): void {
    const used = new Set(this.shards.values());
    for (const [node, link] of this.shardLinks) {
      if (!used.has(node)) {
        this.shardLinks.delete(node);
        link.close();
      }
    }
  }

  /** After losing the main connection: subscribe everything again elsewhere, within the budget. */
  private resubscribeMain(since: number): void {
    const retry = (why: string) => {
      if (Date.now() - since > this.host.ctx.retryBudgetMs) {
        this.host.fail(
          new DrawbridgeError('BACKEND_UNREACHABLE', `lost pub/sub subscriptions: ${why}`, 'subscribe again'),
        );
      } else setTimeout(() => this.resubscribeMain(since), 200);
    };
    if (this.closed || this.host.pool().isClosed || this.channels.size + this.patterns.size === 0) return;
    const link = this.mainLink();
    const again = (outcome: LinkOutcome) => {
      if (outcome instanceof NodeUnavailable) retry(outcome.error.message);
    };
    const channels = [...this.channels].map((k) => Buffer.from(k, 'latin1'));
    const patterns = [...this.patterns].map((k) => Buffer.from(k, 'latin1'));
    if (channels.length) link.request(encodeCommand(['SUBSCRIBE', ...channels]), channels.length, again);
    if (patterns.length) link.request(encodeCommand(['PSUBSCRIBE', ...patterns]), patterns.length, again);
  }

  private resubscribeShard(channel: Buffer, moves: number, since: number): void {
    const key = channel.toString('latin1');
    if (this.closed || this.host.pool().isClosed || this.shards.get(key) !== NO_NODE) return;
    this.shardSubscribe(keySlot(channel), [channel], moves, (outcome, node) => {
      if (outcome === undefined) {
        if (this.shards.has(key)) this.shards.set(key, node);
        return;
      }
      if (Date.now() - since > this.host.ctx.retryBudgetMs) {
        this.host.fail(
          new DrawbridgeError(
            'BACKEND_UNREACHABLE',
            `lost the shard channel subscription ${key}`,
            'subscribe again',
          ),
        );
      } else setTimeout(() => this.resubscribeShard(channel, moves, since), 200);
    });
  }
}
