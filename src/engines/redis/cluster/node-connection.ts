// One logged-in connection to one cluster node, pipelined: commands queued in one event-loop iteration
// leave in one write, and replies are matched to them first-in first-out. It exists before its socket
// does, so commands for a node being connected queue here instead of in every caller; a failed
// connect fails them as "not sent" (safe to retry elsewhere), a connection lost later fails what was
// written as "sent" (it may have run) and what was still queued as "not sent". A RESP3 connection
// says HELLO 3 before anything else, and its answer is consumed here.
import type { Socket } from 'node:net';
import { DrawbridgeError, errorMessage } from '../../../errors.js';
import { ReplyFramer, errorText, isErrorFrame, isPushFrame } from '../reply-parser.js';
import type { RespVersion } from '../serializer.js';
import { copyRange } from '../../../agent/copy-range.js';
import { HELLO_3 } from './protocol.js';

/** Why a command got no reply: `sent` says whether the node may have run it. */
export class NodeUnavailable {
  constructor(
    readonly error: DrawbridgeError,
    readonly sent: boolean,
  ) {}
}

export type ReplyHandler = (reply: Buffer | NodeUnavailable) => void;

/**
 * Takes one command's reply as an object rather than a callback (sender.ts's Routed): no closure per
 * command, and the reply where it lies in the node's chunk, `bytes[start, end)`, not a Buffer of its own.
 */
export interface ReplyTaker {
  replyAt(bytes: Buffer, start: number, end: number): void;
  unavailable(why: NodeUnavailable): void;
}

type Waiting = ReplyHandler | ReplyTaker;

function tell(w: Waiting, why: NodeUnavailable): void {
  if (typeof w === 'function') w(why);
  else w.unavailable(why);
}

/** The node refused HELLO 3 (Redis 5, an ACL): every RESP3 connection to it will; never retried. */
export class Resp3RefusedError extends DrawbridgeError {
  constructor(label: string, why: string) {
    super(
      'BACKEND_UNREACHABLE',
      `cluster node ${label} refused HELLO 3: ${why}`,
      'RESP3 needs Redis 6 or later on every node; until then connect with RESP2 (no HELLO 3)',
    );
  }
}

const ASKING = Buffer.from('*1\r\n$6\r\nASKING\r\n');
/** Above this a batch is written without being copied into one buffer first. */
const MAX_BATCH_BYTES = 256 * 1024;
const ignore: ReplyHandler = () => {};
/** First size of a connection's ring of reply handlers (a power of two). */
const RING_START = 64;
const EMPTY = Buffer.alloc(0);
const PUSH = 0x3e; // '>'
const ATTRIBUTE = 0x7c; // '|': an attribute may precede a push

export class NodeConnection {
  private socket: Socket | undefined;
  private readonly framer: ReplyFramer;
  /**
   * Handlers of commands written (or queued while connecting), oldest first: a ring of
   * `waiting` handlers from `head`, whose size is a power of two, doubled when full. Neither a
   * reply nor a command moves or allocates anything while the pipeline fits.
   */
  private handlers: Waiting[] = new Array<Waiting>(RING_START).fill(ignore);
  private head = 0;
  private waiting = 0;
  /**
   * Written this iteration (or before the socket is ready), not yet handed to the socket: command i
   * is `out[i][outStart[i], outEnd[i])`, in place in the client chunk it came in (no Buffer each).
   * The arrays keep their slots between flushes (`outCount` marks the end).
   */
  private out: Buffer[] = [];
  private outStart: number[] = [];
  private outEnd: number[] = [];
  private outCount = 0;
  private outBytes = 0;
  private flushing = false;
  private dead: DrawbridgeError | undefined;
  private drainWaiters: (() => void)[] = [];
  private closeListeners: (() => void)[] = [];
  /** Data chunks received: the hung-node watch (hung-nodes.ts) sees progress by this changing. */
  progress = 0;
  /** How long a reply may take here, when not the command timeout (blocking commands); 0: no limit. */
  replyLimitMs: number | undefined;
  /** HELLO 3 is written and its answer not read yet. */
  private helloPending = false;
  /** Where RESP3 pushes on a plain connection go (a session's tracking connection); else dropped. */
  private pushes: ((frame: Buffer) => void) | undefined;

  constructor(
    /** Topology node id this connection serves. */
    readonly node: number,
    /** Label for errors and logs, `host:port`. */
    readonly label: string,
    connecting: Promise<Socket>,
    /** When set, every frame goes here instead of to a command handler (pub/sub connections). */
    private readonly frames?: (frame: Buffer) => void,
    /** The protocol every reply on this connection comes in (the sessions it serves speak it). */
    readonly protocol: RespVersion = 2,
  ) {
    this.framer = ReplyFramer.inPlace((bytes, start, end) => this.onFrame(bytes, start, end));
    if (protocol === 3) {
      this.helloPending = true;
      this.write(HELLO_3);
    }
    connecting.then(
      (socket) => this.attach(socket),
      (err: unknown) => this.fail(asDrawbridgeError(err, this.label), false),
    );
  }

  get closed(): boolean {
    return this.dead !== undefined;
  }

  get ready(): boolean {
    return this.socket !== undefined && !this.dead;
  }

  /** Commands waiting for their reply. */
  get inFlight(): number {
    return this.waiting;
  }

  /** Writes `raw` and calls `handler` with its reply. False: buffers are full, wait for onDrain. */
  send(raw: Buffer, handler: ReplyHandler): boolean {
    return this.sendAt(raw, 0, raw.length, handler);
  }

  /** Writes the command `bytes[start, end)`; its reply goes to `taker`. False as for `send`. */
  sendAt(bytes: Buffer, start: number, end: number, taker: Waiting): boolean {
    if (this.dead) {
      tell(taker, new NodeUnavailable(this.dead, false));
      return true;
    }
    this.expect(taker);
    return this.write(bytes, start, end);
  }

  /** `ASKING` then the command `bytes[start, end)` in one write, so no other command can come between them. */
  sendAskingAt(bytes: Buffer, start: number, end: number, taker: Waiting): boolean {
    if (this.dead) {
      tell(taker, new NodeUnavailable(this.dead, false));
      return true;
    }
    this.expect(ignore);
    this.expect(taker);
    this.write(ASKING);
    return this.write(bytes, start, end);
  }

  /** Writes without expecting a matched reply (pub/sub connections, whose frames all go to `frames`). */
  sendUnmatched(raw: Buffer): boolean {
    if (this.dead) return true;
    return this.write(raw);
  }

  /** The error this connection died of, if it did. */
  get failure(): DrawbridgeError | undefined {
    return this.dead;
  }

  /**
   * Runs `fn` once the socket can take more. Never synchronously: the caller is usually still inside
   * a dispatch that is about to return false, and its session pauses the client only after that.
   */
  onDrain(fn: () => void): void {
    if (this.dead || !this.socket || !this.socket.writableNeedDrain) process.nextTick(fn);
    else this.drainWaiters.push(fn);
  }

  /** Takes this connection's RESP3 pushes (tracking invalidations), which answer no command. */
  onPush(fn: (frame: Buffer) => void): void {
    this.pushes = fn;
  }

  onClose(fn: () => void): void {
    if (this.dead) fn();
    else this.closeListeners.push(fn);
  }

  /** Reading is paused (the client is not reading): silence on this connection is ours, not the node's. */
  get readPaused(): boolean {
    return this.socket?.isPaused() ?? false;
  }

  pause(): void {
    this.socket?.pause();
  }

  resume(): void {
    this.socket?.resume();
  }

  /** Closes the connection (for `reason`, or with that error); anything in flight fails as sent. */
  destroy(reason: string | DrawbridgeError = 'closed by the agent'): void {
    const err =
      reason instanceof DrawbridgeError
        ? reason
        : new DrawbridgeError('BACKEND_UNREACHABLE', `connection to ${this.label} ${reason}`);
    this.fail(err, true);
  }

  /**
   * Queues `raw` for the next flush. Commands of every client read in this event-loop iteration leave
   * together after its I/O callbacks (setImmediate), as one TLS write per node: one record and one
   * syscall instead of one per command, and no per-command stream bookkeeping (twemproxy-style).
   */
  private write(bytes: Buffer, start = 0, end = bytes.length): boolean {
    const i = this.outCount++;
    this.out[i] = bytes;
    this.outStart[i] = start;
    this.outEnd[i] = end;
    this.outBytes += end - start;
    const s = this.socket;
    if (!s) return true; // sent once connected
    if (!this.flushing) {
      this.flushing = true;
      setImmediate(this.flush);
    }
    return !s.writableNeedDrain && this.outBytes < MAX_BATCH_BYTES;
  }

  private readonly flush = (): void => {
    this.flushing = false;
    const s = this.socket;
    const { out, outStart, outEnd } = this;
    const count = this.outCount;
    const bytes = this.outBytes;
    this.outCount = this.outBytes = 0;
    if (!s || this.dead || count === 0) return this.clearOut(count);
    if (count === 1 || bytes > MAX_BATCH_BYTES) {
      // Big values are not copied again: write them as they are, in one corked writev.
      s.cork();
      for (let i = 0; i < count; i++) s.write(out[i]!.subarray(outStart[i], outEnd[i]));
      s.uncork();
    } else {
      const batch = Buffer.allocUnsafe(bytes);
      for (let i = 0, at = 0; i < count; i++) at = copyRange(out[i]!, outStart[i]!, outEnd[i]!, batch, at);
      s.write(batch);
    }
    this.clearOut(count);
  };

  /** Lets go of the chunks the first `count` queued commands lay in (their memory is the clients'). */
  private clearOut(count: number): void {
    this.out.fill(EMPTY, 0, count);
  }

  private attach(socket: Socket): void {
    if (this.dead) {
      socket.destroy();
      return;
    }
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.progress++;
      try {
        this.framer.feed(chunk);
      } catch (err) {
        this.fail(asDrawbridgeError(err, this.label), true);
      }
    });
    socket.on('drain', () => {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    });
    socket.on('error', (err) => this.fail(asDrawbridgeError(err, this.label), true));
    socket.on('close', () => this.fail(lost(this.label), true));
    this.flush();
    socket.resume();
  }

  private onFrame(bytes: Buffer, start: number, end: number): void {
    if (this.helloPending) {
      this.helloPending = false;
      const frame = bytes.subarray(start, end);
      if (isErrorFrame(frame)) this.fail(new Resp3RefusedError(this.label, errorText(frame)), true);
      return;
    }
    if (this.frames) {
      this.frames(bytes.subarray(start, end));
      return;
    }
    // A push answers no command: matched to a handler it would hand every later reply to the wrong
    // command, possibly another session's. Only a session's own tracking connection expects any.
    const first = bytes[start];
    if ((first === PUSH || first === ATTRIBUTE) && isPushFrame(bytes.subarray(start, end))) {
      this.pushes?.(bytes.subarray(start, end));
      return;
    }
    if (this.waiting === 0) {
      this.fail(new DrawbridgeError('PROTOCOL_ERROR', `${this.label} sent a reply nobody asked for`), true);
      return;
    }
    const handlers = this.handlers;
    const handler = handlers[this.head]!;
    handlers[this.head] = ignore;
    this.head = (this.head + 1) & (handlers.length - 1);
    this.waiting--;
    if (typeof handler === 'function') handler(bytes.subarray(start, end));
    else handler.replyAt(bytes, start, end);
  }

  /** Adds the handler of the command written next, growing the ring when it is full. */
  private expect(w: Waiting): void {
    let handlers = this.handlers;
    if (this.waiting === handlers.length) {
      const grown = this.inOrder();
      grown.length = 2 * handlers.length;
      this.handlers = handlers = grown.fill(ignore, this.waiting);
      this.head = 0;
    }
    handlers[(this.head + this.waiting++) & (handlers.length - 1)] = w;
  }

  /** The waiting handlers, oldest first, in a new array. */
  private inOrder(): Waiting[] {
    const { handlers, head, waiting } = this;
    const all = new Array<Waiting>(waiting);
    for (let i = 0; i < waiting; i++) all[i] = handlers[(head + i) & (handlers.length - 1)]!;
    return all;
  }

  private fail(err: DrawbridgeError, written: boolean): void {
    if (this.dead) return;
    this.dead = err;
    this.framer.reset();
    this.socket?.destroy();
    const pending = this.inOrder();
    this.handlers.fill(ignore);
    this.head = this.waiting = 0;
    // Handlers and queued buffers pair up in order (ASKING has its own): the last `out.length`
    // commands never left this process, whatever happened to the socket.
    const firstUnsent = written && this.socket !== undefined ? pending.length - this.outCount : 0;
    this.clearOut(this.outCount);
    this.outCount = this.outBytes = 0;
    pending.forEach((h, i) => tell(h, new NodeUnavailable(err, i < firstUnsent)));
    for (const w of this.drainWaiters.splice(0)) w();
    for (const l of this.closeListeners.splice(0)) l();
  }
}

function lost(label: string): DrawbridgeError {
  return new DrawbridgeError(
    'BACKEND_UNREACHABLE',
    `connection to cluster node ${label} closed`,
    'the node restarted or failed over; retry the command',
  );
}

function asDrawbridgeError(err: unknown, label: string): DrawbridgeError {
  if (err instanceof DrawbridgeError) return err;
  return new DrawbridgeError('BACKEND_UNREACHABLE', `cluster node ${label}: ${errorMessage(err)}`);
}
