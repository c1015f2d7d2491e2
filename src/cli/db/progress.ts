// A one-line status while something waits on the cluster: redrawn in place on a terminal, and printed
// only when it changes otherwise (CI logs, pipes), so logs stay readable.
import type { Io } from './io.js';
import { printableLine } from './printable.js';

const FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export class Progress {
  private frame = 0;
  private last = '';

  constructor(private readonly io: Io) {}

  update(text: string, elapsedMs: number): void {
    const message = printableLine(text);
    if (this.io.errIsTTY) {
      const spinner = FRAMES[this.frame++ % FRAMES.length];
      this.io.err(`\r\x1b[2K${spinner} ${message} (${Math.floor(elapsedMs / 1000)}s)`);
    } else if (message !== this.last) {
      this.io.err(`${message}\n`);
    }
    this.last = message;
  }

  /** Clears the spinner line so what follows starts on a clean line. */
  done(): void {
    if (this.io.errIsTTY && this.last) this.io.err('\r\x1b[2K');
    this.last = '';
  }
}
