// Byte accumulation shared by the request parser and the reply framer. Frames handed out are slices
// of the socket chunks (no copy) unless a frame spans chunks; then the unconsumed tail and the new
// chunk are copied into an arena this class owns. The arena only ever grows at its end, past every
// byte already handed out, so slices given to callers (and still queued in socket writes) are never
// overwritten. Capacity doubles with the pending frame, so a huge frame of small elements costs O(n)
// copying, and a bulk of known size (64 MB values) is parked chunk by chunk and copied once.
import { DrawbridgeError } from '../../errors.js';

const EMPTY = Buffer.alloc(0);

export class ChunkBuffer {
  /** Unconsumed bytes are `buf[start, end)`; the frame being scanned starts at `start`. */
  buf: Buffer = EMPTY;
  start = 0;
  end = 0;
  /** Bytes from `start` the pending frame needs at least before another scan can finish it; 0 = unknown. */
  need = 0;
  private owned = false;
  private parked: Buffer[] = [];
  private parkedLen = 0;

  constructor(
    /** Largest frame accepted; beyond it the stream is rejected rather than buffered without bound. */
    public maxFrame: number,
    private readonly what: string,
  ) {}

  get pending(): number {
    return this.end - this.start + this.parkedLen;
  }

  /** Adds a chunk; false when the pending frame is known to be still incomplete (nothing to scan yet). */
  append(chunk: Buffer): boolean {
    const tail = this.end - this.start;
    if (tail === 0 && this.parkedLen === 0) {
      this.buf = chunk;
      this.start = 0;
      this.end = chunk.length;
      this.owned = false;
      return true;
    }
    const total = tail + this.parkedLen + chunk.length;
    if (total > this.maxFrame) {
      throw new DrawbridgeError(
        'MESSAGE_TOO_LARGE',
        `${this.what} larger than ${this.maxFrame} bytes`,
        'split the value or the pipeline into smaller ones',
      );
    }
    if (this.need > 0 && total < this.need) {
      this.parked.push(chunk);
      this.parkedLen += chunk.length;
      return false;
    }
    const incoming = this.parkedLen + chunk.length;
    if (!this.owned || this.buf.length - this.end < incoming) {
      const next = Buffer.allocUnsafe(Math.max(total, 2 * tail));
      this.buf.copy(next, 0, this.start, this.end);
      this.buf = next;
      this.start = 0;
      this.end = tail;
      this.owned = true;
    }
    for (const p of this.parked) this.end += p.copy(this.buf, this.end);
    this.end += chunk.copy(this.buf, this.end);
    this.dropParked();
    return true;
  }

  /** Offset just past the line read by `readInt`; -1 when that line has not fully arrived. */
  next = 0;

  /**
   * Reads `<integer>\r\n` starting at `at` the way Redis's string2ll does (optional `-`, digits, no
   * leading zeros, at most 15 digits) in one pass over the bytes. Returns the value and sets `next`;
   * NaN when the bytes cannot be such a line, whether or not all of it has arrived.
   */
  readInt(at: number): number {
    const buf = this.buf;
    const end = this.end;
    let i = at;
    const neg = i < end && buf[i] === 0x2d; /* - */
    if (neg) i++;
    const first = i;
    let n = 0;
    for (; i < end; i++) {
      const c = buf[i]!;
      if (c === 0x0d /* \r */) break;
      const d = c - 0x30;
      if (d < 0 || d > 9 || i - first >= 15) return NaN;
      n = n * 10 + d;
    }
    if (i + 1 >= end) {
      this.next = -1;
      return 0;
    }
    const digits = i - first;
    if (buf[i + 1] !== 0x0a || digits === 0 || (buf[first] === 0x30 && (digits > 1 || neg))) return NaN;
    this.next = i + 2;
    return neg ? -n : n;
  }

  /**
   * Lets go of the bytes once every one is consumed: an idle connection would otherwise keep its last
   * socket chunk (or its arena) alive, and with it the memory it was sliced from.
   */
  drained(): void {
    if (this.start === this.end && this.parkedLen === 0) this.clear();
  }

  /** Drops everything (after a protocol error, or when the stream is reset). */
  clear(): void {
    this.buf = EMPTY;
    this.start = this.end = this.need = 0;
    this.dropParked();
    this.owned = false;
  }

  /**
   * Empties `parked` only when it holds something: a store to an array's `length` is a call into V8's
   * runtime even when it is already 0, and `drained()` runs after every socket read.
   */
  private dropParked(): void {
    if (this.parked.length !== 0) this.parked.length = 0;
    this.parkedLen = 0;
  }
}

/**
 * Index of the `\r` of the next `\r\n` at or after `from` and before `end`, or -1. A plain loop: the
 * lines searched (simple strings, errors, integers) are short, where a native indexOf costs more.
 */
export function findCrlf(buf: Buffer, from: number, end: number): number {
  for (let i = from; i + 1 < end; i++) {
    if (buf[i] === 0x0d && buf[i + 1] === 0x0a) return i;
  }
  return -1;
}

/**
 * Parses a RESP integer in `buf[from, to)` the way Redis's string2ll does: optional `-`, digits, no
 * leading zeros, no `+`, nothing else. Returns NaN when the text is not such an integer.
 */
export function parseRespInt(buf: Buffer, from: number, to: number): number {
  let i = from;
  let neg = false;
  if (buf[i] === 0x2d /* - */) {
    neg = true;
    i++;
  }
  const digits = to - i;
  if (digits <= 0 || digits > 15) return NaN;
  if (buf[i] === 0x30 /* 0 */) return digits === 1 && !neg ? 0 : NaN;
  let n = 0;
  for (; i < to; i++) {
    const d = buf[i]! - 0x30;
    if (d < 0 || d > 9) return NaN;
    n = n * 10 + d;
  }
  return neg ? -n : n;
}
