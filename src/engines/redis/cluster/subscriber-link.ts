// One subscribed connection to one node. Subscribe-family commands are answered by one frame per
// channel (or one error frame for the whole command), interleaved with message pushes, so replies
// cannot be matched one-per-command: this link counts confirmation frames per request instead and
// forwards pushes untouched (the raw frame is relayed, never re-encoded). The connection speaks the
// session's protocol: in RESP3 confirmations and messages are pushes (`>`), errors may be blob errors.
import { DrawbridgeError } from '../../../errors.js';
import { SUBSCRIBE_COMMANDS, isMessagePush } from '../pubsub-tracker.js';
import { decodeReply, isErrorFrame } from '../reply-parser.js';
import { type NodeConnection, NodeUnavailable } from './node-connection.js';
import type { LoginPool } from './pool.js';
import { messageFor } from './protocol.js';

/** `undefined` = every channel confirmed; otherwise the error frame or the lost connection. */
export type LinkOutcome = Buffer | NodeUnavailable | undefined;

interface Pending {
  expected: number;
  got: number;
  done: (outcome: LinkOutcome) => void;
}

export interface LinkEvents {
  push(frame: Buffer): void;
  /** A `sunsubscribe` nobody asked for: the node gave the channel's slot away. */
  evicted(channel: Buffer): void;
  /** The connection is gone; requests still pending were told. */
  lost(link: SubscriberLink): void;
  /** A request filled the connection's buffers: the session stops reading until `conn` drains. */
  full(conn: NodeConnection): void;
}

export class SubscriberLink {
  readonly conn: NodeConnection;
  private readonly pending: Pending[] = [];

  constructor(
    pool: LoginPool,
    readonly node: number,
    private readonly events: LinkEvents,
  ) {
    this.conn = pool.take(node, (frame) => this.onFrame(frame));
    this.conn.onClose(() => {
      const err =
        this.conn.failure ??
        new DrawbridgeError('BACKEND_UNREACHABLE', `subscriber connection to ${this.conn.label} closed`);
      for (const p of this.pending.splice(0)) p.done(new NodeUnavailable(err, true));
      this.events.lost(this);
    });
  }

  /** Sends a subscribe-family command expecting `expected` confirmation frames. */
  request(raw: Buffer, expected: number, done: (outcome: LinkOutcome) => void): boolean {
    this.pending.push({ expected, got: 0, done });
    const ok = this.conn.sendUnmatched(raw);
    if (!ok) this.events.full(this.conn);
    return ok;
  }

  close(): void {
    this.conn.destroy('unsubscribed');
  }

  private onFrame(frame: Buffer): void {
    if (isErrorFrame(frame)) {
      // An error answers the whole command at the head of the queue.
      this.pending.shift()?.done(frame);
      return;
    }
    if (isMessagePush(frame)) {
      this.events.push(frame);
      return;
    }
    // A confirmation reads the same in both protocols once a push is seen as an array.
    const value = decodeReply(messageFor(frame, 2));
    if (!Array.isArray(value) || value.length < 2 || !Buffer.isBuffer(value[0])) return;
    const type = value[0].toString('latin1');
    if (!SUBSCRIBE_COMMANDS.has(type)) return;
    const head = this.pending[0];
    if (!head) {
      if (type === 'sunsubscribe' && Buffer.isBuffer(value[1])) this.events.evicted(value[1]);
      return;
    }
    if (++head.got >= head.expected) {
      this.pending.shift();
      head.done(undefined);
    }
  }
}
