// Replies leave in the order commands arrived, whoever produced them: the backend (possibly out of
// order, for a cluster), or the agent itself (NOPERM, AUTH, errors). Each command takes a sequence
// number; a reply is written once every earlier one has been.

// The module's binding, not the global: globalThis.performance is an accessor, a getter call per read.
import { performance } from 'node:perf_hooks';
import type { Writable } from 'node:stream';
import type { LatencySeries } from '../../agent/fast-histogram.js';
import { COMMAND_SAMPLE } from '../../agent/metrics.js';
import { type HeldWrites, WriteBatcher } from './write-batcher.js';

/**
 * Replies reserved and not yet written past which the client is not read (until half are written): a
 * client pipelining commands whose replies it never reads would otherwise grow the agent's queues by
 * ~50 bytes per 14-byte PING, without end (Redis itself keeps reading such a client).
 */
export const MAX_PENDING_REPLIES = 65_536;

export class ReplyQueue implements HeldWrites {
  private readonly out: WriteBatcher;
  // waiting[head] is the reply with sequence number `next`, the next to write, and [head, tail) are
  // reserved; a head index rather than shift() keeps 10,000-command pipelines linear. Emptied, the
  // array keeps its slots (`length = 0` would drop them and every pipeline would grow new ones);
  // a slot is cleared once written, so no reply outlives its write. A reply waiting is
  // `waiting[i][starts[i], ends[i])`: in place in its backend chunk (a cluster session's replies
  // come out of order), not a Buffer of its own.
  private waiting: (Buffer | undefined)[] = [];
  private starts: number[] = [];
  private ends: number[] = [];
  private head = 0;
  private tail = 0;
  private next = 0;
  private whenEmpty: (() => void) | undefined;
  // Latency sampling: one command in COMMAND_SAMPLE is timed, from its reservation to its reply being
  // written; the rest cost an increment and a comparison. One sample in flight at a time.
  private reserved = 0;
  private sampledSeq = -1;
  private sampledAt = 0;
  /** MAX_PENDING_REPLIES wait: `room` was told to stop reading the client. */
  full = false;

  constructor(
    private readonly socket: Writable,
    private readonly latency?: LatencySeries,
    /** Told (true) when MAX_PENDING_REPLIES wait, and (false) once half of them are written. */
    private readonly room?: (full: boolean) => void,
  ) {
    // Replies still out (a cluster session's other nodes): written together when they come in time.
    this.out = new WriteBatcher(socket, () => this.pending > 0);
  }

  /** Bytes handed to the client socket so far. */
  get bytesWritten(): number {
    return this.out.bytes;
  }

  /** Replies reserved but not yet written. */
  get pending(): number {
    return this.tail - this.head;
  }

  /** The sequence number `reserve` gave last. */
  get lastReserved(): number {
    return this.next + this.tail - this.head - 1;
  }

  /** Whether the reply for `seq` has been written. */
  answered(seq: number): boolean {
    return seq < this.next;
  }

  /** The client is slow: its socket buffers are over the high-water mark. */
  get congested(): boolean {
    return this.socket.writableNeedDrain;
  }

  /** A place for the reply of the command just received. */
  reserve(): number {
    if (this.tail === this.waiting.length) {
      this.waiting.push(undefined);
      this.starts.push(0);
      this.ends.push(0);
    }
    const seq = this.next + this.tail++ - this.head;
    if (this.tail - this.head === MAX_PENDING_REPLIES && !this.full) {
      this.full = true;
      this.room?.(true);
    }
    if ((++this.reserved & (COMMAND_SAMPLE - 1)) === 0 && this.sampledSeq < 0 && this.latency) {
      this.sampledSeq = seq;
      this.sampledAt = performance.now();
    }
    return seq;
  }

  /** The reply for `seq`: `reply[start, end)` (all of it by default; in place in a backend chunk). */
  fill(seq: number, reply: Buffer, start = 0, end = reply.length): void {
    if (seq !== this.next) {
      const at = this.head + seq - this.next;
      this.waiting[at] = reply;
      this.starts[at] = start;
      this.ends[at] = end;
      return;
    }
    // Held while the replies now in order go out: if none is left pending after them, nothing more
    // is due for this client and they leave at once (a pipeline of one is not kept for the end of the
    // turn, and costs no setImmediate); otherwise the batcher waits for the rest (one write per turn).
    this.out.hold();
    this.out.write(reply, start, end);
    this.head++;
    this.next++;
    while (this.head < this.tail && this.waiting[this.head] !== undefined) {
      const at = this.head++;
      this.out.write(this.waiting[at]!, this.starts[at], this.ends[at]);
      this.waiting[at] = undefined;
      this.next++;
    }
    this.out.release();
    if (this.sampledSeq >= 0 && this.sampledSeq < this.next) this.observeSample();
    if (this.head === this.tail) {
      this.head = this.tail = 0;
      this.emptied();
    } else if (this.head >= 4096 && this.head * 2 >= this.tail) {
      this.waiting = this.waiting.slice(this.head, this.tail);
      this.starts = this.starts.slice(this.head, this.tail);
      this.ends = this.ends.slice(this.head, this.tail);
      this.tail -= this.head;
      this.head = 0;
    }
    if (this.full && this.tail - this.head <= MAX_PENDING_REPLIES / 2) {
      this.full = false;
      this.room?.(false);
    }
  }

  /** A reply made by the agent for the command just received. */
  push(reply: Buffer): void {
    if (this.pending === 0) this.out.write(reply);
    else this.fill(this.reserve(), reply);
  }

  /** Out-of-band bytes (pub/sub pushes, a termination notice): written now, ahead of waiting replies. */
  writeNow(bytes: Buffer): void {
    this.out.write(bytes);
  }

  /** Runs `fn` once every reserved reply has been written (at once if none is waiting). */
  afterAll(fn: () => void): void {
    this.whenEmpty = fn;
    if (this.pending === 0) this.emptied();
  }

  flush(): void {
    this.out.flush();
  }

  /** Replies written until `release()` leave together then (one backend read's). */
  hold(): void {
    this.out.hold();
  }

  release(): void {
    this.out.release();
  }

  private observeSample(): void {
    this.latency!.observe((performance.now() - this.sampledAt) / 1000);
    this.sampledSeq = -1;
  }

  private emptied(): void {
    const fn = this.whenEmpty;
    this.whenEmpty = undefined;
    fn?.();
  }
}
