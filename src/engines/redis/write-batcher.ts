// Batched socket writes for the relay. Commands and replies are relayed as ranges of the chunks they
// arrived in (no Buffer per command or reply); consecutive ranges of one chunk are merged back into a
// single run (a whole pipeline: the chunk itself, as it came), and everything written in one turn
// of the event loop leaves in one socket write — a 16-command pipeline costs one syscall each way,
// not sixteen. The turn ends after all of its I/O callbacks (setImmediate), not
// after the callback that wrote (nextTick): a cluster session's replies come from several node
// connections, and those read in one turn leave in one write instead of one per node. When more of
// the batch is due (`due`: replies of the same pipeline still out, often read in the very next turn),
// the write waits one turn more, never longer: one TLS record and syscall each way instead of two.
// A reader that knows where its batch ends (a session's one client read, a standalone backend read, the
// reply queue writing the replies now in order) holds the batcher instead: its writes leave when it
// releases, in its own callback, unless more is due, and no end-of-turn callback is scheduled (a
// pending one also makes the event loop poll again before it waits). So a cluster reply that leaves
// nothing pending (pipeline depth 1) is written in the node read that brought it, not after the
// turn's other I/O callbacks, and costs no setImmediate.
import type { Writable } from 'node:stream';
import { copyRange } from '../../agent/copy-range.js';

/** Writes held between `hold()` and `release()`, then sent together at the release. */
export interface HeldWrites {
  hold(): void;
  release(): void;
}

/**
 * Runs totalling up to this are copied into one buffer: a cluster session's 16 replies interleave
 * three nodes' chunks (~11 runs), and one write of a copy costs far less than a stream write per run
 * and a writev (TLS copies a writev into one record anyway). Larger batches go out as a corked writev.
 */
const MAX_COPY_BYTES = 64 * 1024;
const EMPTY = Buffer.alloc(0);

export class WriteBatcher implements HeldWrites {
  private first: Buffer | undefined;
  private runBuffer: ArrayBufferLike | undefined;
  private runStart = 0;
  private runEnd = 0;
  /**
   * Runs ended this turn (a slice of another chunk came between them), oldest first: run i is
   * `runs[i][runFrom[i], runTo[i])`, without a Buffer made for it. The arrays keep their slots
   * (`runCount` marks the end).
   */
  private runs: Buffer[] = [];
  private runFrom: number[] = [];
  private runTo: number[] = [];
  private runCount = 0;
  private runsBytes = 0;
  private scheduled = false;
  private holds = 0;
  /** Bytes written so far (for metrics). */
  bytes = 0;

  /** The last turn's write was put off once already (see `due`). */
  private putOff = false;

  constructor(
    private readonly socket: Writable,
    /** More of this batch is due (a cluster session's replies from other nodes, a split read). */
    private readonly due?: () => boolean,
  ) {}

  /** Writes `chunk[start, end)`: a relayed command or reply in place in the chunk it arrived in. */
  write(chunk: Buffer, start = 0, end = chunk.length): void {
    const len = end - start;
    const at = chunk.byteOffset + start;
    this.bytes += len;
    if (this.first !== undefined) {
      // The same chunk as the run's first (most of a pipeline's commands or replies) needs no
      // `.buffer` read, the costly test; most slices of other chunks already fail the offset test.
      if (at === this.runEnd && (chunk === this.first || chunk.buffer === this.runBuffer)) {
        this.runEnd += len;
        return;
      }
      this.endRun();
    }
    this.first = chunk;
    this.runBuffer = chunk.buffer;
    this.runStart = at;
    this.runEnd = at + len;
    if (!this.scheduled && this.holds === 0) {
      this.scheduled = true;
      setImmediate(this.turnEnded);
    }
  }

  /** The end of the turn the first bytes were written in (or, once, of the next one). */
  private readonly turnEnded = (): void => {
    if (!this.putOff && this.first !== undefined && this.due?.()) {
      this.putOff = true;
      setImmediate(this.turnEnded);
      return;
    }
    this.putOff = false;
    this.flush();
  };

  hold(): void {
    this.holds++;
  }

  release(): void {
    if (--this.holds > 0 || this.first === undefined) return;
    if (!this.due?.()) return this.flush();
    // More is due: the end of the turn (and at most one more) decides, as for writes not held.
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(this.turnEnded);
  }

  /** Sends what is batched now (also runs by itself at the end of the current turn). */
  readonly flush = (): void => {
    this.scheduled = false;
    if (this.first === undefined) return;
    if (this.runCount === 0) {
      const only = this.run();
      // Not kept past the write: an idle connection would pin the memory its last chunk came from.
      this.first = this.runBuffer = undefined;
      return this.send(only);
    }
    this.endRun();
    this.first = this.runBuffer = undefined;
    const { runs, runFrom, runTo } = this;
    const count = this.runCount;
    const bytes = this.runsBytes;
    this.runCount = this.runsBytes = 0;
    if (bytes <= MAX_COPY_BYTES) {
      const all = Buffer.allocUnsafe(bytes);
      for (let i = 0, at = 0; i < count; i++) at = copyRange(runs[i]!, runFrom[i]!, runTo[i]!, all, at);
      this.send(all);
    } else {
      this.socket.cork();
      for (let i = 0; i < count; i++) this.send(runs[i]!.subarray(runFrom[i], runTo[i]));
      this.socket.uncork();
    }
    runs.fill(EMPTY, 0, count);
  };

  /** Ends the current run: kept as a range of its first chunk when it lies within it (the usual case). */
  private endRun(): void {
    const first = this.first!;
    const from = this.runStart - first.byteOffset;
    const to = this.runEnd - first.byteOffset;
    const i = this.runCount++;
    if (to <= first.length) {
      this.runs[i] = first;
      this.runFrom[i] = from;
      this.runTo[i] = to;
    } else {
      this.runs[i] = this.run();
      this.runFrom[i] = 0;
      this.runTo[i] = to - from;
    }
    this.runsBytes += to - from;
  }

  /** The current run as one Buffer: its first chunk when it is exactly that, else a view of the bytes. */
  private run(): Buffer {
    const first = this.first!;
    const len = this.runEnd - this.runStart;
    if (this.runStart === first.byteOffset && len === first.length) return first;
    return Buffer.from(this.runBuffer!, this.runStart, len);
  }

  private send(bytes: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(bytes);
  }
}
