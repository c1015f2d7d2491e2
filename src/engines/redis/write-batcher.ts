// Batched socket writes for the relay. Commands and replies are relayed as slices of the chunks they
// arrived in; consecutive slices of one chunk are merged back into a single write, and everything
// written in one turn of the event loop leaves in one writev (cork/uncork) — a 16-command pipeline
// costs one syscall each way, not sixteen. The turn ends after all of its I/O callbacks (setImmediate),
// not after the callback that wrote (nextTick): a cluster session's replies come from several node
// connections, and those read in one turn leave in one write instead of one per node.
import type { Writable } from 'node:stream';

export class WriteBatcher {
  private first: Buffer | undefined;
  private runBuffer: ArrayBufferLike | undefined;
  private runStart = 0;
  private runEnd = 0;
  private scheduled = false;
  private corked = false;
  /** Bytes written so far (for metrics). */
  bytes = 0;

  constructor(private readonly socket: Writable) {}

  write(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.first !== undefined) {
      // byteOffset first: reading `.buffer` is the costly test, and most slices that do not continue
      // the run already fail the cheap one.
      if (chunk.byteOffset === this.runEnd && chunk.buffer === this.runBuffer) {
        this.runEnd += chunk.length;
        return;
      }
      // A second run this turn: cork so both leave together.
      if (!this.corked) {
        this.corked = true;
        this.socket.cork();
      }
      this.writeRun();
    }
    this.first = chunk;
    this.runBuffer = chunk.buffer;
    this.runStart = chunk.byteOffset;
    this.runEnd = chunk.byteOffset + chunk.length;
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Sends what is batched now (also runs by itself at the end of the current turn). */
  readonly flush = (): void => {
    this.scheduled = false;
    if (this.first !== undefined) this.writeRun();
    if (this.corked) {
      this.corked = false;
      this.socket.uncork();
    }
  };

  private writeRun(): void {
    const first = this.first!;
    const run = this.runBuffer!;
    // Not kept past the write: an idle connection would pin the memory its last chunk came from.
    this.first = this.runBuffer = undefined;
    if (this.socket.destroyed) return;
    const len = this.runEnd - this.runStart;
    this.socket.write(len === first.length ? first : Buffer.from(run, this.runStart, len));
  }
}
