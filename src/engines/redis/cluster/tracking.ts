// CLIENT TRACKING for one cluster session (RESP3; the session refuses REDIRECT, RESP2 and BCAST
// prefixes outside the database user's keys before anything gets here). Redis tracks per connection
// — the keys a connection read, or BCAST prefixes — and pushes invalidations on that connection. The
// shared connections serve every session of a login, so a tracking session moves its plain commands
// to connections of its own, one per node, each told the session's CLIENT TRACKING command before
// anything else; their `invalidate` pushes go to this session's client alone:
//
//   GET k ──▶ session's own connection to k's node (CLIENT TRACKING ON ... sent first) ──▶ node
//   client ◀── >2 invalidate [k] ◀── the same connection, after k changed
//
// So invalidations come from every node the client read from; BCAST is turned on at every master at
// once (a prefix spans slots). What one server never needs: when the cluster changes shape (a slot
// moved, a failover) a node may now hold keys whose reads it never saw, and a lost connection takes
// its node's tracking table with it; both times the client is told to drop its whole cache (an
// `invalidate` push with a null key list, what Redis sends on FLUSHALL).
// Invalidations are ordered after the replies of commands sent before them (push-order.ts).
//
// Transactions and blocking commands hold a connection of their own (transaction.ts, blocking.ts);
// while tracking is on they borrow it from here (Lender), never from the login's pool: a connection
// that tracked reads keeps its table as long as the session tracks (given back clean it waits here
// for the next one), and is never pooled again, where another session would inherit its table. It
// tracks every read (plain CLIENT TRACKING ON [NOLOOP]): CLIENT CACHING is not carried over to it,
// and an invalidation for a key the client did not cache costs it nothing. BCAST tracks prefixes on
// the plain connections whatever connection reads, so there borrowing takes pool connections.
import type { RedisCommand } from '../parser.js';
import { isErrorFrame } from '../reply-parser.js';
import { RedisReplyError } from '../router.js';
import { OK, encodeCommand } from '../serializer.js';
import { trackingRequest } from '../tracking.js';
import { type NodeConnection, NodeUnavailable } from './node-connection.js';
import type { LoginPool } from './pool.js';
import type { Done, Lane, SendContext } from './sender.js';

/** `>2 invalidate _`: drop every cached key. */
const FLUSH_ALL = Buffer.from('>2\r\n$10\r\ninvalidate\r\n_\r\n');
const ignore = (): void => undefined;
const WATCHING =
  'CLIENT TRACKING ON cannot start while WATCH holds a cluster node connection of this session through the agent (reads there would go untracked); UNWATCH (or EXEC) first';

const TRACK_READS = encodeCommand(['CLIENT', 'TRACKING', 'ON']);
const TRACK_READS_NOLOOP = encodeCommand(['CLIENT', 'TRACKING', 'ON', 'NOLOOP']);

/** Where transactions and blocking commands take their connections (LoginPool's take/release). */
export interface Lender {
  take(node: number): NodeConnection;
  /** `clean`: no transaction or reply pending on it. */
  release(c: NodeConnection, clean: boolean): void;
  /** `c` is what take() would hand out now (tracking has not been turned on or off since). */
  current(c: NodeConnection): boolean;
}

export interface TrackingHost {
  readonly ctx: SendContext;
  pool(): LoginPool;
  push(frame: Buffer): void;
}

export class Tracking implements Lender {
  /** The client's CLIENT TRACKING ON ... as sent; undefined while tracking is off. */
  private command: Buffer | undefined;
  /** What connections lent out send first; undefined in BCAST mode (they need no tracking). */
  private lending: Buffer | undefined;
  /** Bumped when tracking ends: connections of an earlier round push nothing and are not kept. */
  private round = 0;
  /** Connections lent out, by the round they track for. */
  private readonly lent = new Map<NodeConnection, number>();
  /** Lent connections given back clean: their tracking tables stay valid while this round lasts. */
  private spare: NodeConnection[] = [];
  /** OPTIN or OPTOUT: what CLIENT CACHING may say. */
  private opt: 'optin' | 'optout' | undefined;
  private readonly conns = new Map<number, NodeConnection>();
  /** CLIENT CACHING yes|no for the session's next command. */
  private next: Buffer | undefined;
  /** The client is not reading: connections opened meanwhile start paused too. */
  private paused = false;

  constructor(private readonly host: TrackingHost) {}

  get on(): boolean {
    return this.command !== undefined;
  }

  /**
   * CLIENT TRACKING (in RESP3: the session's tracking guard refuses it in RESP2) or CLIENT CACHING.
   * `pinned`: WATCH holds a connection, whose reads tracking turned on now would miss.
   */
  run(cmd: RedisCommand, done: Done, pinned = false): boolean {
    if (cmd.name !== 'client|caching') return this.dispatch(cmd, done, pinned);
    done(this.caching(cmd) ?? OK);
    return true;
  }

  /** CLIENT TRACKING ON|OFF [...]: ON opens a tracking connection to every master before answering. */
  private dispatch(cmd: RedisCommand, done: Done, pinned: boolean): boolean {
    const { mode, opt, bcast, noloop } = trackingRequest(cmd);
    if (mode === 'off') {
      this.off();
      done(OK);
      return true;
    }
    if (mode !== 'on' || pinned) {
      done(new RedisReplyError('ERR', mode !== 'on' ? 'syntax error' : WATCHING));
      return true;
    }
    this.off();
    this.command = cmd.raw;
    this.opt = opt;
    this.lending = bcast ? undefined : noloop ? TRACK_READS_NOLOOP : TRACK_READS;
    const masters = this.host.ctx.topology.masters();
    let left = masters.length;
    let failed: Buffer | RedisReplyError | undefined;
    const answered = (reply: Buffer | NodeUnavailable) => {
      if (reply instanceof NodeUnavailable) failed ??= new RedisReplyError('ERR', reply.error.message);
      else if (isErrorFrame(reply)) failed ??= reply;
      if (--left > 0) return;
      if (failed) this.off();
      done(failed ?? OK);
    };
    if (left === 0) {
      this.off();
      done(new RedisReplyError('CLUSTERDOWN', 'the cluster topology is not known yet; retry in a moment'));
      return true;
    }
    for (const node of masters) this.conns.set(node, this.open(node, this.command, answered));
    return true;
  }

  take(node: number): NodeConnection {
    if (!this.lending) return this.host.pool().take(node);
    const at = this.spare.findIndex((c) => c.node === node && !c.closed);
    const c = at >= 0 ? this.spare.splice(at, 1)[0]! : this.open(node, this.lending, ignore);
    this.lent.set(c, this.round);
    return c;
  }

  release(c: NodeConnection, clean: boolean): void {
    const round = this.lent.get(c);
    if (round === undefined) return this.host.pool().release(c, clean);
    this.lent.delete(c);
    if (round === this.round && this.on && clean && !c.closed && c.inFlight === 0) this.spare.push(c);
    else this.host.pool().release(c, false);
  }

  current(c: NodeConnection): boolean {
    return this.lending ? this.lent.get(c) === this.round : !this.lent.has(c);
  }

  /**
   * CLIENT CACHING yes|no, checked as Redis checks it; the command itself is sent right before the
   * session's next command, on whichever node that goes to (nextLane).
   */
  caching(cmd: RedisCommand): RedisReplyError | undefined {
    const arg = cmd.args[2]?.toString('latin1').toLowerCase();
    if (cmd.args.length !== 3 || (arg !== 'yes' && arg !== 'no'))
      return new RedisReplyError('ERR', 'syntax error');
    if (!this.on || !this.opt) {
      return new RedisReplyError(
        'ERR',
        'CLIENT CACHING can be called only when the client is in tracking mode with OPTIN or OPTOUT mode enabled',
      );
    }
    if ((arg === 'yes') !== (this.opt === 'optin')) {
      const mode = arg === 'yes' ? 'OPTIN' : 'OPTOUT';
      return new RedisReplyError(
        'ERR',
        `CLIENT CACHING ${arg.toUpperCase()} is only valid when tracking is enabled in ${mode} mode.`,
      );
    }
    this.next = cmd.raw;
    return undefined;
  }

  /** The lane of a tracking session's plain commands: its own connection to each node. */
  private readonly lane: Lane = (node) => {
    let c = this.conns.get(node);
    if (!c) this.conns.set(node, (c = this.open(node, this.command!, ignore)));
    return c;
  };

  /** The lane of the session's next plain command: CLIENT CACHING first on its node when one is due. */
  nextLane(): Lane {
    const caching = this.next;
    if (!caching) return this.lane;
    this.next = undefined;
    return (node) => {
      const c = this.lane(node);
      c.send(caching, ignore);
      return c;
    };
  }

  /**
   * The cluster changed shape: cached keys may live where no read was tracked, so the client drops
   * its cache; a new master gets a tracking connection at once (BCAST invalidations start there).
   */
  reshaped(): void {
    if (!this.on) return;
    this.host.push(FLUSH_ALL);
    for (const node of this.host.ctx.topology.masters()) this.lane(node);
  }

  /** After a new login: tracking goes on over that login's connections; the old ones' tables are gone. */
  relogged(): void {
    const { command, lending } = this;
    if (!command) return;
    this.off();
    this.command = command;
    this.lending = lending;
    this.reshaped();
  }

  pause(): void {
    this.paused = true;
    for (const c of this.owned()) c.pause();
  }

  resume(): void {
    this.paused = false;
    for (const c of this.owned()) c.resume();
  }

  private *owned(): IterableIterator<NodeConnection> {
    yield* this.conns.values();
    yield* this.spare;
    yield* this.lent.keys();
  }

  /**
   * Tracking ends (CLIENT TRACKING OFF, RESET, the session closing). Connections lent out stay with
   * their borrowers (a WATCH holds on), pushing nothing, until given back; then they close.
   */
  off(): void {
    this.command = this.lending = this.next = undefined;
    this.round++;
    const conns = [...this.conns.values(), ...this.spare];
    this.conns.clear();
    this.spare = [];
    for (const c of conns) this.host.pool().release(c, false);
  }

  /** A connection of this round that sends `track` first; losing it loses what it tracked. */
  private open(
    node: number,
    track: Buffer,
    answered: (reply: Buffer | NodeUnavailable) => void,
  ): NodeConnection {
    const c = this.host.pool().take(node);
    const round = this.round;
    if (this.paused) c.pause();
    c.onPush((frame) => {
      if (round === this.round) this.host.push(frame);
    });
    c.onClose(() => {
      if (round !== this.round) return;
      if (this.conns.get(node) === c) this.conns.delete(node);
      const spare = this.spare.indexOf(c);
      if (spare >= 0) this.spare.splice(spare, 1);
      this.host.push(FLUSH_ALL);
    });
    c.send(track, (reply) => {
      // Tracking refused on a connection opened later (a node that joined): not usable for reads.
      if (!(reply instanceof NodeUnavailable) && isErrorFrame(reply) && answered === ignore) c.destroy();
      answered(reply);
    });
    return c;
  }
}
