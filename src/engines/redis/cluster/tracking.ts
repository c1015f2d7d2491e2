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
// Not tracked: reads inside MULTI/EXEC and blocking commands, which run on connections of their own
// (client-side caches do not cache them).
import type { RedisCommand } from '../parser.js';
import { isErrorFrame } from '../reply-parser.js';
import { RedisReplyError } from '../router.js';
import { OK } from '../serializer.js';
import { trackingRequest } from '../tracking.js';
import { type NodeConnection, NodeUnavailable } from './node-connection.js';
import type { LoginPool } from './pool.js';
import type { Done, Lane, SendContext } from './sender.js';

/** `>2 invalidate _`: drop every cached key. */
const FLUSH_ALL = Buffer.from('>2\r\n$10\r\ninvalidate\r\n_\r\n');
const ignore = (): void => undefined;

export interface TrackingHost {
  readonly ctx: SendContext;
  pool(): LoginPool;
  push(frame: Buffer): void;
}

export class Tracking {
  /** The client's CLIENT TRACKING ON ... as sent; undefined while tracking is off. */
  private command: Buffer | undefined;
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

  /** CLIENT TRACKING (in RESP3: the session's tracking guard refuses it in RESP2) or CLIENT CACHING. */
  run(cmd: RedisCommand, done: Done): boolean {
    if (cmd.name !== 'client|caching') return this.dispatch(cmd, done);
    done(this.caching(cmd) ?? OK);
    return true;
  }

  /** CLIENT TRACKING ON|OFF [...]: ON opens a tracking connection to every master before answering. */
  private dispatch(cmd: RedisCommand, done: Done): boolean {
    const { mode, opt } = trackingRequest(cmd);
    if (mode === 'off') {
      this.off();
      done(OK);
      return true;
    }
    if (mode !== 'on') {
      done(new RedisReplyError('ERR', 'syntax error'));
      return true;
    }
    this.off();
    this.command = cmd.raw;
    this.opt = opt;
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
    for (const node of masters) this.open(node, answered);
    return true;
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
  private readonly lane: Lane = (node) => this.conns.get(node) ?? this.open(node, ignore);

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
    for (const node of this.host.ctx.topology.masters()) if (!this.conns.has(node)) this.open(node, ignore);
  }

  /** After a new login: tracking goes on over that login's connections; the old ones' tables are gone. */
  relogged(): void {
    const command = this.command;
    if (!command) return;
    this.off();
    this.command = command;
    this.reshaped();
  }

  pause(): void {
    this.paused = true;
    for (const c of this.conns.values()) c.pause();
  }

  resume(): void {
    this.paused = false;
    for (const c of this.conns.values()) c.resume();
  }

  /** Tracking ends (CLIENT TRACKING OFF, RESET, the session closing). */
  off(): void {
    this.command = undefined;
    this.next = undefined;
    const conns = [...this.conns.values()];
    this.conns.clear();
    for (const c of conns) this.host.pool().release(c, false);
  }

  private open(node: number, answered: (reply: Buffer | NodeUnavailable) => void): NodeConnection {
    const c = this.host.pool().take(node);
    if (this.paused) c.pause();
    this.conns.set(node, c);
    c.onPush((frame) => this.host.push(frame));
    c.onClose(() => {
      if (this.conns.get(node) !== c) return;
      this.conns.delete(node);
      this.host.push(FLUSH_ALL);
    });
    c.send(this.command!, (reply) => {
      // Tracking refused on a connection opened later (a node that joined): not usable for reads.
      if (!(reply instanceof NodeUnavailable) && isErrorFrame(reply) && answered === ignore) c.destroy();
      answered(reply);
    });
    return c;
  }
}
