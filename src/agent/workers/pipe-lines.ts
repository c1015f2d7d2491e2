// How the primary reads its workers' pipes (audit lines, and log lines when the audit is on stdout):
// each pipe is read into one buffer of its own, and the whole lines of each read are copied into a
// batch shared by all pipes, reused once written. Node's default read allocates a new 64 KiB
// ArrayBuffer per read: at a busy relay (tens of MB/s) that external memory made V8 run a major GC
// every second or so, most of the primary's CPU. Copying a read costs a memcpy; the start of a line
// whose end has not come yet waits in the pipe's own carry buffer.
import { Socket } from 'node:net';
import type { Readable } from 'node:stream';

const NEWLINE = 0x0a;
/** What one read may take (libuv's own suggestion). */
const READ_BYTES = 64 * 1024;
/** A batch holds the lines of several reads; one larger than this gets a buffer of its own. */
const BATCH_BYTES = 256 * 1024;
/** Written batches kept for reuse. */
const SPARES = 4;

/** Batches of lines: views handed out, and taken back once written (`release`). */
export class LineBatches {
  private batch: Buffer = Buffer.allocUnsafe(BATCH_BYTES);
  private used = 0;
  /** Views of each batch not yet released. */
  private readonly unwritten = new Map<ArrayBufferLike, number>();
  private readonly spares: Buffer[] = [];

  /** `length` bytes to fill, from the current batch (or a new one). */
  take(length: number): Buffer {
    if (length > BATCH_BYTES) return Buffer.allocUnsafe(length); // not pooled: released by GC
    if (this.used + length > BATCH_BYTES) {
      this.batch = this.spares.pop() ?? Buffer.allocUnsafe(BATCH_BYTES);
      this.used = 0;
    }
    const view = this.batch.subarray(this.used, this.used + length);
    this.used += length;
    const memory = this.batch.buffer;
    this.unwritten.set(memory, (this.unwritten.get(memory) ?? 0) + 1);
    return view;
  }

  /** A view from `take` is written: its batch is reused once all of its views are. */
  release(view: Buffer): void {
    const memory = view.buffer;
    const left = (this.unwritten.get(memory) ?? 0) - 1;
    if (left > 0) return void this.unwritten.set(memory, left);
    if (left < 0) return; // not one of ours (a batch of its own, or the primary's own lines)
    this.unwritten.delete(memory);
    if (memory === this.batch.buffer) this.used = 0;
    else if (this.spares.length < SPARES) this.spares.push(Buffer.from(memory, 0, BATCH_BYTES));
  }
}

/** Reads a worker's pipe and hands on its whole lines, in order, as views of `batches`. */
export class PipeLines {
  /** What is read (pause, resume, 'close'). */
  readonly stream: Readable;
  private readonly chunk = Buffer.allocUnsafe(READ_BYTES);
  /** The start of a line whose end has not come yet. */
  private carry = Buffer.allocUnsafe(0);
  carried = 0;

  constructor(
    pipe: Readable,
    private readonly batches: LineBatches,
    private readonly lines: (lines: Buffer) => void,
  ) {
    const handle = (pipe as { _handle?: unknown })._handle;
    if (!(pipe instanceof Socket) || !handle) {
      // Not a pipe Node reads itself (a stream of a test): its chunks, as they come.
      this.stream = pipe;
      pipe.on('data', (chunk: Buffer) => this.read(chunk, chunk.length));
      return;
    }
    // node:child_process opened the pipe with Node's own reads, which cannot be told to use a given
    // buffer afterwards: its handle goes to a socket that does. (Synchronously after the fork: nothing
    // was read yet.) The first socket, left without a handle, is closed with ours, so the
    // ChildProcess still sees all of its stdio close.
    (pipe as { _handle?: unknown })._handle = null;
    const onread = { buffer: this.chunk, callback: (n: number) => this.read(this.chunk, n) };
    const opts = { handle, readable: true, writable: false, onread };
    this.stream = new Socket(opts as ConstructorParameters<typeof Socket>[0]);
    this.stream.once('close', () => pipe.destroy());
  }

  /** The first `n` bytes of `chunk` came. */
  private read(chunk: Buffer, n: number): void {
    const end = chunk.lastIndexOf(NEWLINE, n - 1) + 1;
    if (end === 0) return this.keep(chunk, 0, n);
    const lines = this.batches.take(this.carried + end);
    this.carry.copy(lines, 0, 0, this.carried);
    chunk.copy(lines, this.carried, 0, end);
    this.carried = 0;
    if (end < n) this.keep(chunk, end, n);
    this.lines(lines);
  }

  private keep(chunk: Buffer, from: number, to: number): void {
    const need = this.carried + to - from;
    if (need > this.carry.length) {
      const larger = Buffer.allocUnsafe(Math.max(need, 2 * this.carry.length, 4096));
      this.carry.copy(larger, 0, 0, this.carried);
      this.carry = larger;
    }
    chunk.copy(this.carry, this.carried, from, to);
    this.carried = need;
  }
}
