// Streaming RESP2 reply framer (backend → agent). It finds where each complete reply ends — simple
// strings, errors, integers, bulks, nulls and arbitrarily nested arrays — and hands out the raw frame
// as a slice of the received bytes, so replies are relayed to clients without re-serialising. A frame
// can also be decoded into a value when the agent must read it (MOVED/ASK, COMMAND INFO, fan-out).
import { DrawbridgeError, StacklessError } from '../../errors.js';
import { ChunkBuffer, findCrlf, parseRespInt } from './chunk-buffer.js';

/** An error reply's text without the leading `-`, e.g. `MOVED 3999 10.0.0.1:6381`. */
export class RespError extends StacklessError {
  /** The first word: ERR, MOVED, ASK, NOPERM, ... */
  get prefix(): string {
    const sp = this.message.indexOf(' ');
    return sp < 0 ? this.message : this.message.slice(0, sp);
  }
}

/** Simple strings decode to string, bulks to Buffer, integers to number, nil bulk/array to null. */
export type RespValue = string | number | Buffer | null | RespError | RespValue[];

const enum Byte {
  Simple = 0x2b, // +
  Error = 0x2d, // -
  Integer = 0x3a, // :
  Bulk = 0x24, // $
  Array = 0x2a, // *
}

function backendProtocolError(message: string): DrawbridgeError {
  return new DrawbridgeError(
    'PROTOCOL_ERROR',
    `unexpected reply from the backend: ${message}`,
    'check that spec.uri points at a Redis server speaking RESP2',
  );
}

export interface ReplyFramerOptions {
  /** Largest single reply accepted from the backend (default 1 GB). */
  maxFrame?: number;
}

export class ReplyFramer {
  private readonly bytes: ChunkBuffer;
  // Progress inside the pending frame, relative to its start: next element offset and, per open
  // array, how many elements it still expects.
  private pos = 0;
  private readonly open: number[] = [];

  constructor(
    private readonly onFrame: (frame: Buffer) => void,
    opts: ReplyFramerOptions = {},
  ) {
    this.bytes = new ChunkBuffer(opts.maxFrame ?? 1024 * 1024 * 1024, 'reply');
  }

  /** Calls `onFrame` for every complete reply now available, in order. Throws PROTOCOL_ERROR. */
  feed(chunk: Buffer): void {
    if (!this.bytes.append(chunk)) return;
    const b = this.bytes;
    b.need = 0;
    while (b.start < b.end && this.frame()) {
      /* one frame handed out per turn */
    }
  }

  /** Scans elements of the pending frame until it completes (true) or bytes run out (false). */
  private frame(): boolean {
    const b = this.bytes;
    const buf = b.buf;
    const base = b.start;
    for (;;) {
      const at = base + this.pos;
      if (at >= b.end) return false;
      const type = buf[at];
      let next: number;
      if (type === Byte.Bulk || type === Byte.Array) {
        const n = b.readInt(at + 1);
        if (b.next < 0 && n === 0) return false;
        next = b.next;
        if (type === Byte.Array) {
          if (n > 0)
            this.open.push(n + 1); // +1: the close below counts this array header as one element
          else if (n !== 0 && n !== -1) throw backendProtocolError('invalid array length');
        } else if (n >= 0) {
          next += n + 2;
          if (next > b.end) {
            b.need = next - base;
            return false;
          }
        } else if (n !== -1) throw backendProtocolError('invalid bulk length');
      } else if (type === Byte.Simple || type === Byte.Error || type === Byte.Integer) {
        const cr = findCrlf(buf, at + 1, b.end);
        if (cr < 0) return false;
        next = cr + 2;
      } else {
        throw backendProtocolError(`unknown type byte 0x${(type ?? 0).toString(16)}`);
      }
      this.pos = next - base;
      // One element done: close every array it completes.
      let depth = this.open.length;
      while (depth > 0) {
        const left = this.open[depth - 1]! - 1;
        if (left > 0) {
          this.open[depth - 1] = left;
          break;
        }
        this.open.pop();
        depth--;
      }
      if (depth === 0) {
        b.start = next;
        this.pos = 0;
        this.onFrame(buf.subarray(base, next));
        return true;
      }
    }
  }

  /** Drops any partial frame (the connection it came from is gone). */
  reset(): void {
    this.bytes.clear();
    this.pos = 0;
    this.open.length = 0;
  }
}

/** Decodes one complete frame (as handed out by ReplyFramer). */
export function decodeReply(frame: Buffer): RespValue {
  const [value, end] = decodeAt(frame, 0);
  if (end !== frame.length) throw backendProtocolError('trailing bytes after a reply');
  return value;
}

function decodeAt(buf: Buffer, at: number): [RespValue, number] {
  const cr = findCrlf(buf, at + 1, buf.length);
  if (cr < 0) throw backendProtocolError('truncated reply');
  const next = cr + 2;
  switch (buf[at]) {
    case Byte.Simple:
      return [buf.toString('utf8', at + 1, cr), next];
    case Byte.Error:
      return [new RespError(buf.toString('utf8', at + 1, cr)), next];
    case Byte.Integer:
      return [Number(buf.toString('latin1', at + 1, cr)), next];
    case Byte.Bulk: {
      const len = parseRespInt(buf, at + 1, cr);
      if (len < 0) return [null, next];
      return [buf.subarray(next, next + len), next + len + 2];
    }
    case Byte.Array: {
      const n = parseRespInt(buf, at + 1, cr);
      if (n < 0) return [null, next];
      const items: RespValue[] = new Array<RespValue>(n);
      let pos = next;
      for (let i = 0; i < n; i++) [items[i], pos] = decodeAt(buf, pos);
      return [items, pos];
    }
    default:
      throw backendProtocolError(`unknown type byte 0x${(buf[at] ?? 0).toString(16)}`);
  }
}
