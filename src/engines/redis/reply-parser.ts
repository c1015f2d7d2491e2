// Streaming RESP2/RESP3 reply framer (backend → agent). It finds where each complete reply ends and
// hands out the raw frame as a slice of the received bytes, so replies are relayed to clients without
// re-serialising. A frame can also be decoded into a value when the agent must read it (reply-decoder).
//
// For code built on it (RESP3 sessions, the cluster router):
// - One frame per reply, every RESP3 type included, streamed ones (`$?` `*?` `%?` `~?` `>?`) too.
// - An attribute (`|`) is part of the frame of the reply it annotates: attribute + reply come out as
//   ONE frame, so counting frames still counts replies.
// - A push (`>`, out-of-band: pub/sub messages, tracking invalidations) comes out as a frame of its
//   own and is never a reply to a command: test `isPushFrame(frame)` (`frame[0] === PUSH`, or a push
//   after an attribute) before matching a frame to a pending command.
// - decodeReply skips attributes; maps, sets, pushes, doubles, big numbers and verbatim strings decode
//   to RespMap/RespSet/RespPush/RespDouble/RespBigNumber/RespVerbatim, booleans to boolean, `_` to
//   null, blob errors to RespError; serializer.ts encodeValue(v, 3) writes them back as RESP3.
// - Limits: maxFrame bytes per reply, maxDepth nested aggregates (MAX_REPLY_DEPTH, 10,000: more than
//   a Lua script can return; decodeReply reads 1,000, MAX_DECODE_DEPTH); a streamed aggregate that
//   never ends is bounded by maxFrame. Violations throw PROTOCOL_ERROR or
//   MESSAGE_TOO_LARGE, which end the one session whose backend sent them.
import { ChunkBuffer, findCrlf } from './chunk-buffer.js';
import { MAX_REPLY_DEPTH, backendProtocolError, replyType, tooDeep } from './reply-decoder.js';

export {
  MAX_DECODE_DEPTH,
  MAX_REPLY_DEPTH,
  RespBigNumber,
  RespDouble,
  RespError,
  RespMap,
  RespPush,
  RespSet,
  type RespValue,
  RespVerbatim,
  decodeReply,
} from './reply-decoder.js';

const enum Byte {
  Simple = 0x2b, // +
  Error = 0x2d, // -
  Integer = 0x3a, // :
  Bulk = 0x24, // $
  Array = 0x2a, // *
  Null = 0x5f, // _
  Boolean = 0x23, // #
  Double = 0x2c, // ,
  BigNumber = 0x28, // (
  BlobError = 0x21, // !
  Verbatim = 0x3d, // =
  Map = 0x25, // %
  Set = 0x7e, // ~
  Attribute = 0x7c, // |
  Push = 0x3e, // >
  StreamEnd = 0x2e, // .
  Part = 0x3b, // ;
  Streamed = 0x3f, // ?
  CR = 0x0d,
  LF = 0x0a,
}

/** Whether a frame is a push (out-of-band data), not the reply to a command. */
export function isPushFrame(frame: Buffer): boolean {
  return frame[0] === Byte.Push || (frame[0] === Byte.Attribute && replyType(frame) === Byte.Push);
}

/** A simple error (`-ERR ...`) or RESP3's blob error (`!len ERR ...`): told by the first byte. */
export function isErrorFrame(frame: Buffer): boolean {
  const t = frame[0];
  return t === Byte.Error || t === Byte.BlobError;
}

/** Where an error frame's text starts: after `-`, or after a blob error's length line. */
export function errorTextStart(frame: Buffer): number {
  if (frame[0] !== Byte.BlobError) return 1;
  const cr = findCrlf(frame, 1, frame.length);
  return cr < 0 ? frame.length : cr + 2;
}

/** An error frame's text, e.g. `MOVED 3999 10.0.0.2:6379`. */
export function errorText(frame: Buffer): string {
  const at = errorTextStart(frame);
  return frame.toString('utf8', at, Math.max(at, frame.length - 2));
}

function unterminated(): Error {
  return backendProtocolError('bulk string not terminated by CRLF');
}

/** Open-aggregate count of a streamed aggregate: counting never closes it, only its `.` does. */
const STREAMED = Infinity;

export interface ReplyFramerOptions {
  /** Largest single reply accepted from the backend (default 1 GB). */
  maxFrame?: number;
  /** Deepest nesting of aggregates in one reply (default MAX_REPLY_DEPTH). */
  maxDepth?: number;
}

/** A frame in place: `bytes[start, end)`. */
export type FrameInPlace = (bytes: Buffer, start: number, end: number) => void;

export class ReplyFramer {
  private readonly bytes: ChunkBuffer;
  private readonly maxDepth: number;
  // Progress inside the pending frame, relative to its start: next element offset and, per open
  // aggregate, how many elements it still expects (STREAMED: until its `.`).
  private pos = 0;
  private readonly open: number[] = [];
  /** Inside a streamed string: `pos` is at its next `;` part. */
  private chunked = false;

  /**
   * `onFrame` gets each frame as a Buffer; `inPlace` (ReplyFramer.inPlace) instead gets where it lies
   * in the chunk, `bytes[start, end)`, valid for as long as a slice of it would be.
   */
  constructor(
    private readonly onFrame: (frame: Buffer) => void,
    opts: ReplyFramerOptions = {},
    private readonly inPlace?: FrameInPlace,
  ) {
    this.bytes = new ChunkBuffer(opts.maxFrame ?? 1024 * 1024 * 1024, 'reply');
    this.maxDepth = opts.maxDepth ?? MAX_REPLY_DEPTH;
  }

  /** A framer handing out where each frame lies instead of a Buffer per frame (a relay's hot path). */
  static inPlace(onFrame: FrameInPlace, opts: ReplyFramerOptions = {}): ReplyFramer {
    return new ReplyFramer((frame) => onFrame(frame, 0, frame.length), opts, onFrame);
  }

  /** Calls `onFrame` for every complete reply now available, in order. Throws PROTOCOL_ERROR. */
  feed(chunk: Buffer): void {
    if (!this.bytes.append(chunk)) return;
    const b = this.bytes;
    b.need = 0;
    while (b.start < b.end && this.frame()) {
      /* one frame handed out per turn */
    }
    b.drained();
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
      // RESP2's types first, in the order a proxied workload sees them most.
      if (type === Byte.Bulk || type === Byte.Array) {
        const n = b.readInt(at + 1);
        if (b.next < 0 && n === 0) return false;
        next = b.next;
        if (type === Byte.Array) {
          if (n > 0) {
            // +1: the close below counts this array header as one element
            if (this.open.length >= this.maxDepth) throw tooDeep(this.maxDepth);
            this.open.push(n + 1);
          } else if (n !== 0 && n !== -1 && (next = this.streamed(at, 'array')) < 0) return false;
        } else if (n >= 0) {
          next += n + 2;
          if (next > b.end) {
            b.need = next - base;
            return false;
          }
          if (buf[next - 2] !== Byte.CR || buf[next - 1] !== Byte.LF) throw unterminated();
        } else if (n !== -1 && (next = this.streamedString(base, at)) < 0) return false;
      } else if (type === Byte.Simple || type === Byte.Error || type === Byte.Integer) {
        const cr = findCrlf(buf, at + 1, b.end);
        if (cr < 0) return false;
        next = cr + 2;
      } else {
        next = this.resp3(base, at, type);
        if (next < 0) return false;
      }
      this.pos = next - base;
      // One element done: close every aggregate it completes.
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
        if (this.inPlace) this.inPlace(buf, base, next);
        else this.onFrame(buf.subarray(base, next));
        return true;
      }
    }
  }

  /** The types RESP2 lacks; returns where the element ends, or -1 until more bytes arrive. */
  private resp3(base: number, at: number, type: number | undefined): number {
    const b = this.bytes;
    const buf = b.buf;
    switch (type) {
      case Byte.Null:
      case Byte.Boolean:
      case Byte.Double:
      case Byte.BigNumber: {
        const cr = findCrlf(buf, at + 1, b.end);
        return cr < 0 ? -1 : cr + 2;
      }
      case Byte.BlobError:
      case Byte.Verbatim: {
        const n = b.readInt(at + 1);
        if (b.next < 0 && n === 0) return -1;
        if (!(n >= 0)) throw backendProtocolError('invalid bulk length');
        return this.blobEnd(base, b.next, n);
      }
      case Byte.Map:
      case Byte.Set:
      case Byte.Push:
      case Byte.Attribute: {
        const n = b.readInt(at + 1);
        if (b.next < 0 && n === 0) return -1;
        if (Number.isNaN(n) && type !== Byte.Attribute) return this.streamed(at, 'aggregate');
        if (!(n >= 0)) throw backendProtocolError('invalid aggregate length');
        const elements = type === Byte.Map || type === Byte.Attribute ? 2 * n : n;
        if (type === Byte.Attribute) this.annotate();
        if (elements > 0) this.nest(elements + 1);
        return b.next;
      }
      case Byte.StreamEnd: {
        if (at + 3 > b.end) return -1;
        const depth = this.open.length;
        if (buf[at + 1] !== Byte.CR || buf[at + 2] !== Byte.LF || this.open[depth - 1] !== STREAMED) {
          throw backendProtocolError("'.' outside a streamed aggregate");
        }
        this.open[depth - 1] = 1; // the close that follows ends it
        return at + 3;
      }
      case Byte.Part:
        if (this.chunked) return this.parts(base);
        throw backendProtocolError("';' outside a streamed string");
      default:
        throw backendProtocolError(`unknown type byte 0x${(type ?? 0).toString(16)}`);
    }
  }

  private nest(count: number): void {
    if (this.open.length >= this.maxDepth) throw tooDeep(this.maxDepth);
    this.open.push(count);
  }

  /**
   * An attribute is no element of its own: it makes whatever encloses it wait for one element more
   * (the reply it annotates), and at the top it opens a pair (attribute, reply) that ends the frame.
   */
  private annotate(): void {
    const depth = this.open.length;
    if (depth === 0) this.nest(2);
    else this.open[depth - 1]! += 1;
  }

  /** End of a `len`-byte body starting at `body` plus its CRLF; -1 (and `need` set) until it arrives. */
  private blobEnd(base: number, body: number, len: number): number {
    const b = this.bytes;
    const next = body + len + 2;
    if (next > b.end) {
      b.need = next - base;
      return -1;
    }
    if (b.buf[next - 2] !== Byte.CR || b.buf[next - 1] !== Byte.LF) throw unterminated();
    return next;
  }

  /** `?\r\n` after an aggregate's type byte; what other lengths fail on. */
  private streamHeader(at: number, what: string): number {
    const b = this.bytes;
    if (b.buf[at + 1] !== Byte.Streamed) throw backendProtocolError(`invalid ${what} length`);
    if (at + 4 > b.end) return -1;
    if (b.buf[at + 2] !== Byte.CR || b.buf[at + 3] !== Byte.LF) {
      throw backendProtocolError(`invalid ${what} length`);
    }
    return at + 4;
  }

  private streamed(at: number, what: string): number {
    const next = this.streamHeader(at, what);
    if (next >= 0) this.nest(STREAMED + 1);
    return next;
  }

  private streamedString(base: number, at: number): number {
    const next = this.streamHeader(at, 'bulk');
    if (next < 0) return -1;
    this.chunked = true;
    this.pos = next - base;
    return this.parts(base);
  }

  /** The `;<len>` parts of a streamed string from `pos` on; where its `;0` ends, or -1. */
  private parts(base: number): number {
    const b = this.bytes;
    for (;;) {
      const at = base + this.pos;
      if (at >= b.end) return -1;
      if (b.buf[at] !== Byte.Part) throw backendProtocolError('streamed string part expected');
      const n = b.readInt(at + 1);
      if (b.next < 0 && n === 0) return -1;
      if (!(n >= 0)) throw backendProtocolError('invalid streamed string part length');
      if (n === 0) {
        this.chunked = false;
        return b.next;
      }
      const next = this.blobEnd(base, b.next, n);
      if (next < 0) return -1;
      this.pos = next - base;
    }
  }

  /** Drops any partial frame (the connection it came from is gone). */
  reset(): void {
    this.bytes.clear();
    this.pos = 0;
    this.open.length = 0;
    this.chunked = false;
  }
}
