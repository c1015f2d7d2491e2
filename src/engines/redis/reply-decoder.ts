// Decoding complete reply frames (as ReplyFramer hands them out) into values, for the few replies the
// agent reads itself: MOVED/ASK, COMMAND INFO, HELLO, fan-out merging. RESP2 types keep their plain JS
// values (string, number, Buffer, null, RespError, arrays); RESP3 types that have no RESP2 twin get a
// class or primitive of their own so they can be encoded back exactly (serializer.ts encodeValue).
// Attributes (`|`) are skipped: Redis sends none today, and their content never changes the reply.
import { DrawbridgeError, StacklessError } from '../../errors.js';
import { findCrlf, parseRespInt } from './chunk-buffer.js';

/** An error reply's text without the leading `-` (or a blob error's `!<len>` body), e.g. `MOVED 3999 10.0.0.1:6381`. */
export class RespError extends StacklessError {
  /** The first word: ERR, MOVED, ASK, NOPERM, ... */
  get prefix(): string {
    const sp = this.message.indexOf(' ');
    return sp < 0 ? this.message : this.message.slice(0, sp);
  }
}

/** RESP3 map `%`: ordered key/value pairs; keys may be any value (usually simple strings or bulks). */
export class RespMap {
  constructor(readonly entries: [RespValue, RespValue][]) {}

  /** The value under a string key (a simple string, or a bulk holding the same UTF-8 text). */
  get(key: string): RespValue | undefined {
    for (const [k, v] of this.entries) {
      if (k === key || (Buffer.isBuffer(k) && k.toString() === key)) return v;
    }
    return undefined;
  }
}

/** RESP3 set `~` (order as received). */
export class RespSet {
  constructor(readonly items: RespValue[]) {}
}

/** RESP3 push `>`: out-of-band data (pub/sub messages, tracking invalidations), never a command's reply. */
export class RespPush {
  constructor(readonly items: RespValue[]) {}
}

/** RESP3 double `,` (inf, -inf and nan included). */
export class RespDouble {
  constructor(readonly value: number) {}
}

/** RESP3 big number `(`. */
export class RespBigNumber {
  constructor(readonly value: bigint) {}
}

/** RESP3 verbatim string `=`: a three-letter format (`txt`, `mkd`) and the text. */
export class RespVerbatim {
  constructor(
    readonly format: string,
    readonly text: Buffer,
  ) {}
}

/**
 * Simple strings decode to string, bulks (and streamed strings) to Buffer, integers to number, nil
 * bulk/array and RESP3 null to null, booleans to boolean, errors and blob errors to RespError; the
 * other RESP3 types to the classes above.
 */
export type RespValue =
  | string
  | number
  | boolean
  | Buffer
  | null
  | RespError
  | RespValue[]
  | RespMap
  | RespSet
  | RespPush
  | RespDouble
  | RespBigNumber
  | RespVerbatim;

/**
 * Deepest nesting of aggregates the framer relays (ReplyFramerOptions.maxDepth): past what Redis itself
 * can send (a Lua script's reply stops at about 8,000 levels), so only a hostile backend meets it.
 */
export const MAX_REPLY_DEPTH = 10_000;

/**
 * Deepest nesting decodeReply reads, well inside the JS stack. The replies the agent reads itself
 * (redirects, COMMAND, HELLO, fan-out) are a few levels deep; deeper ones are only ever relayed raw.
 */
export const MAX_DECODE_DEPTH = 1000;

export function backendProtocolError(
  message: string,
  hint = 'check that spec.uri points at a Redis server speaking RESP2 or RESP3',
): DrawbridgeError {
  return new DrawbridgeError('PROTOCOL_ERROR', `unexpected reply from the backend: ${message}`, hint);
}

export function tooDeep(depth: number): DrawbridgeError {
  return backendProtocolError(
    `aggregates nested deeper than ${depth} levels`,
    'return flatter replies (a script returning deeply nested tables?)',
  );
}

const DOUBLE = /^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf|-?nan)$/;
const BIG_NUMBER = /^-?\d+$/;

/** Reads values from one frame; `at` is the next unread byte. */
class Cursor {
  at = 0;
  constructor(readonly buf: Buffer) {}

  /** One value, after any attributes (skipped in a loop: a run of them costs no stack). */
  value(depth: number): RespValue {
    this.skipAttributes(depth);
    return this.plain(depth);
  }

  skipAttributes(depth: number): void {
    while (this.buf[this.at] === 0x7c /* | */) {
      const from = this.at + 1;
      this.count(from, this.line(from), 2, false, depth);
    }
  }

  private plain(depth: number): RespValue {
    const buf = this.buf;
    const at = this.at;
    const type = buf[at];
    if (type === 0x2e /* . */ || type === 0x3b /* ; */) throw backendProtocolError('misplaced stream part');
    const cr = findCrlf(buf, at + 1, buf.length);
    if (cr < 0) throw backendProtocolError('truncated reply');
    this.at = cr + 2;
    const streamed = cr === at + 2 && buf[at + 1] === 0x3f; /* ? */
    switch (type) {
      case 0x2b /* + */:
        return buf.toString('utf8', at + 1, cr);
      case 0x2d /* - */:
        return new RespError(buf.toString('utf8', at + 1, cr));
      case 0x3a /* : */:
        return this.integer(at + 1, cr);
      case 0x5f /* _ */:
        if (cr !== at + 1) throw backendProtocolError('invalid null');
        return null;
      case 0x23 /* # */:
        if (cr !== at + 2 || (buf[at + 1] !== 0x74 && buf[at + 1] !== 0x66)) {
          throw backendProtocolError('invalid boolean');
        }
        return buf[at + 1] === 0x74; /* t */
      case 0x2c /* , */: {
        const text = buf.toString('latin1', at + 1, cr);
        if (!DOUBLE.test(text)) throw backendProtocolError('invalid double');
        return new RespDouble(text.endsWith('inf') ? (text[0] === '-' ? -Infinity : Infinity) : Number(text));
      }
      case 0x28 /* ( */: {
        const text = buf.toString('latin1', at + 1, cr);
        if (!BIG_NUMBER.test(text)) throw backendProtocolError('invalid big number');
        return new RespBigNumber(BigInt(text));
      }
      case 0x24 /* $ */:
        if (streamed) return this.streamedString();
        return this.blob(at + 1, cr, true) ?? null;
      case 0x21 /* ! */:
        return new RespError(this.blob(at + 1, cr, false)!.toString());
      case 0x3d /* = */: {
        const body = this.blob(at + 1, cr, false)!;
        if (body.length < 4 || body[3] !== 0x3a /* : */)
          throw backendProtocolError('invalid verbatim string');
        return new RespVerbatim(body.toString('latin1', 0, 3), body.subarray(4));
      }
      case 0x2a /* * */:
        return streamed ? this.streamed(depth) : this.count(at + 1, cr, 1, true, depth);
      case 0x25 /* % */: {
        const flat = streamed ? this.streamed(depth) : this.count(at + 1, cr, 2, false, depth)!;
        if (flat.length % 2 !== 0) throw backendProtocolError('map with a key and no value');
        const entries: [RespValue, RespValue][] = new Array(flat.length / 2);
        for (let i = 0; i < entries.length; i++) entries[i] = [flat[2 * i]!, flat[2 * i + 1]!];
        return new RespMap(entries);
      }
      case 0x7e /* ~ */:
        return new RespSet(streamed ? this.streamed(depth) : this.count(at + 1, cr, 1, false, depth)!);
      case 0x3e /* > */:
        return new RespPush(streamed ? this.streamed(depth) : this.count(at + 1, cr, 1, false, depth)!);
      default:
        throw backendProtocolError(`unknown type byte 0x${(type ?? 0).toString(16)}`);
    }
  }

  private integer(from: number, to: number): number {
    const n = parseRespInt(this.buf, from, to);
    if (!Number.isNaN(n)) return n;
    // Integers past 15 digits (up to 64 bits) are valid replies; Number() keeps them approximately.
    const text = this.buf.toString('latin1', from, to);
    if (!BIG_NUMBER.test(text)) throw backendProtocolError('invalid integer');
    return Number(text);
  }

  /** The body of `$`/`!`/`=` whose length is in `buf[from, to)`; undefined for `$-1` when allowed. */
  private blob(from: number, to: number, nilAllowed: boolean): Buffer | undefined {
    const len = parseRespInt(this.buf, from, to);
    if (len === -1 && nilAllowed) return undefined;
    if (!(len >= 0)) throw backendProtocolError('invalid bulk length');
    return this.body(len);
  }

  private body(len: number): Buffer {
    const start = this.at;
    const end = start + len;
    if (end + 2 > this.buf.length) throw backendProtocolError('truncated reply');
    if (this.buf[end] !== 0x0d || this.buf[end + 1] !== 0x0a) {
      throw backendProtocolError('bulk string not terminated by CRLF');
    }
    this.at = end + 2;
    return this.buf.subarray(start, end);
  }

  /** `n` (times `per`) elements; null for `*-1` when allowed. */
  private count(
    from: number,
    to: number,
    per: number,
    nilAllowed: boolean,
    depth: number,
  ): RespValue[] | null {
    const n = parseRespInt(this.buf, from, to);
    if (n === -1 && nilAllowed) return null;
    // Each element takes at least 3 bytes: a hostile count cannot make us allocate past the frame.
    if (!(n >= 0) || n * per * 3 > this.buf.length - this.at)
      throw backendProtocolError('invalid aggregate length');
    if (depth >= MAX_DECODE_DEPTH) throw tooDeep(MAX_DECODE_DEPTH);
    const items = new Array<RespValue>(n * per);
    for (let i = 0; i < items.length; i++) items[i] = this.value(depth + 1);
    return items;
  }

  /** Elements of `*?`/`%?`/`~?`/`>?` up to the `.` that ends them. */
  private streamed(depth: number): RespValue[] {
    if (depth >= MAX_DECODE_DEPTH) throw tooDeep(MAX_DECODE_DEPTH);
    const items: RespValue[] = [];
    while (this.buf[this.at] !== 0x2e /* . */) {
      if (this.at >= this.buf.length) throw backendProtocolError('truncated reply');
      items.push(this.value(depth + 1));
    }
    const dot = this.at;
    if (this.line(dot + 1) !== dot + 1) throw backendProtocolError('invalid end of a streamed aggregate');
    return items;
  }

  /** `;<len>` chunks of `$?` up to `;0`, joined. */
  private streamedString(): Buffer {
    const parts: Buffer[] = [];
    for (;;) {
      if (this.buf[this.at] !== 0x3b /* ; */) throw backendProtocolError('streamed string part expected');
      const from = this.at + 1;
      const cr = this.line(from);
      const len = parseRespInt(this.buf, from, cr);
      if (!(len >= 0)) throw backendProtocolError('invalid streamed string part length');
      if (len === 0) return Buffer.concat(parts);
      parts.push(this.body(len));
    }
  }

  /** Steps past the line starting at `from`; returns its `\r`. */
  private line(from: number): number {
    const cr = findCrlf(this.buf, from, this.buf.length);
    if (cr < 0) throw backendProtocolError('truncated reply');
    this.at = cr + 2;
    return cr;
  }
}

/** Decodes one complete frame (as handed out by ReplyFramer). Throws PROTOCOL_ERROR. */
export function decodeReply(frame: Buffer): RespValue {
  const c = new Cursor(frame);
  const value = c.value(0);
  if (c.at !== frame.length) throw backendProtocolError('trailing bytes after a reply');
  return value;
}

/** The type byte of a frame's reply, after any attributes before it. */
export function replyType(frame: Buffer): number | undefined {
  const c = new Cursor(frame);
  c.skipAttributes(0);
  return frame[c.at];
}
