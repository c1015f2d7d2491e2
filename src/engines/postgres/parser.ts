// Inbound framing for both directions. Every length field is checked before a byte is buffered or
// relayed: a bad or oversized frame throws a DrawbridgeError (PROTOCOL_ERROR / MESSAGE_TOO_LARGE), which
// ends that one session. Nothing here throws anything else, whatever the input (see the fuzz test).
import { type Hash, createHash } from 'node:crypto';
import { DrawbridgeError } from '../../errors.js';
import {
  AUTH_MESSAGE_LIMIT,
  CANCEL_REQUEST_LENGTH,
  FrontendCode,
  type Frame,
  LARGE_MESSAGE_LIMIT,
  MAX_STARTUP_LENGTH,
  SMALL_MESSAGE_LIMIT,
  StartupCode,
  type StartupPacket,
} from './messages.js';

const HEADER_LENGTH = 5; // code byte + int32 length (the length counts itself, not the code)
const EMPTY = Buffer.alloc(0);

/** Per message code: the largest length field accepted, 0 for codes not allowed at all. */
export type FrameLimits = Uint32Array;

function limits(entries: [number, number][]): FrameLimits {
  const table = new Uint32Array(256);
  for (const [code, max] of entries) table[code] = max;
  return table;
}

/** What a client may send once the session is established (PostgreSQL's own per-type caps). */
export const FRONTEND_LIMITS = limits([
  [FrontendCode.Query, LARGE_MESSAGE_LIMIT],
  [FrontendCode.Parse, LARGE_MESSAGE_LIMIT],
  [FrontendCode.Bind, LARGE_MESSAGE_LIMIT],
  [FrontendCode.FunctionCall, LARGE_MESSAGE_LIMIT],
  [FrontendCode.CopyData, LARGE_MESSAGE_LIMIT],
  [FrontendCode.Close, SMALL_MESSAGE_LIMIT],
  [FrontendCode.Describe, SMALL_MESSAGE_LIMIT],
  [FrontendCode.Execute, SMALL_MESSAGE_LIMIT],
  [FrontendCode.Flush, SMALL_MESSAGE_LIMIT],
  [FrontendCode.Sync, SMALL_MESSAGE_LIMIT],
  [FrontendCode.Terminate, SMALL_MESSAGE_LIMIT],
  [FrontendCode.CopyDone, SMALL_MESSAGE_LIMIT],
  [FrontendCode.CopyFail, SMALL_MESSAGE_LIMIT],
]);

let capped: { max: number; table: FrameLimits } | undefined;

/** FRONTEND_LIMITS with the large messages capped at `max` bytes (limits.maxRequestBytes); shared. */
export function frontendLimits(max: number): FrameLimits {
  if (capped?.max !== max) {
    const table = FRONTEND_LIMITS.map((limit) => Math.min(limit, max));
    capped = { max, table };
  }
  return capped.table;
}

/** What a client may send while the agent asks it for a password (a ServiceAccount token). */
export const PASSWORD_LIMITS = limits([[FrontendCode.Password, AUTH_MESSAGE_LIMIT]]);

/** The backend is trusted to frame correctly; any code, any non-negative length. */
export const BACKEND_LIMITS = new Uint32Array(256).fill(0x7fff_ffff);

function describeCode(code: number): string {
  const hex = '0x' + code.toString(16).padStart(2, '0');
  return code >= 0x20 && code < 0x7f ? `'${String.fromCharCode(code)}' (${hex})` : hex;
}

/** Validates one frame header; returns the body length. */
function checkFrame(code: number, length: number, table: FrameLimits): number {
  const max = table[code] ?? 0;
  if (max === 0) {
    throw new DrawbridgeError(
      'PROTOCOL_ERROR',
      `invalid frontend message type ${describeCode(code)}`,
      'the client does not speak the PostgreSQL v3 protocol correctly; use psql, libpq or a maintained driver',
    );
  }
  if (length < 4) {
    throw new DrawbridgeError('PROTOCOL_ERROR', `invalid length ${length} in message ${describeCode(code)}`);
  }
  if (length > max) {
    throw new DrawbridgeError(
      'MESSAGE_TOO_LARGE',
      `message ${describeCode(code)} of ${length} bytes exceeds the limit of ${max} bytes`,
      'send smaller statements or parameters (COPY streams large data in chunks); the agent allows ' +
        'messages up to limits.maxRequestBytes in spec.agent.limits',
    );
  }
  return length - 4;
}

/**
 * Pull-side framing for the connection handshake: reads complete packets from an accumulating buffer
 * and leaves whatever follows untouched, so the relay can take over mid-stream without losing bytes.
 */
export class HandshakeBuffer {
  /** The unread bytes. */
  private buf: Buffer = EMPTY;
  /** When `buf` lies in memory of this buffer's own, that memory; `buf` ends at `storeEnd` in it. */
  private store: Buffer | undefined;
  private storeEnd = 0;

  get length(): number {
    return this.buf.length;
  }

  /**
   * Appends in place, the room doubling as it fills: a peer sending its packet a byte per TCP segment
   * (or TLS record) costs a copy of what it sent, not of everything buffered per byte (a 64 KB password
   * message, once 2 GB of copying).
   */
  push(chunk: Buffer): void {
    const unread = this.buf.length;
    if (unread === 0) {
      this.buf = chunk;
      this.store = undefined;
      return;
    }
    if (!this.store || this.storeEnd + chunk.length > this.store.length) {
      this.store = Buffer.allocUnsafe(2 * (unread + chunk.length));
      this.storeEnd = this.buf.copy(this.store);
    }
    // Past the end of every view handed out so far: those keep their bytes.
    this.storeEnd += chunk.copy(this.store, this.storeEnd);
    this.buf = this.store.subarray(this.storeEnd - unread - chunk.length, this.storeEnd);
  }

  /** The next startup-phase packet (no code byte), or undefined until it is complete. */
  startup(): StartupPacket | undefined {
    if (this.buf.length < 4) return undefined;
    const length = this.buf.readInt32BE(0);
    if (length < 8 || length > MAX_STARTUP_LENGTH) {
      throw new DrawbridgeError(
        'PROTOCOL_ERROR',
        `invalid startup packet length ${length}`,
        'connect with a PostgreSQL client (protocol 3.0) and sslmode=require or verify-full',
      );
    }
    if (this.buf.length < length) return undefined;
    const packet = this.buf.subarray(0, length);
    this.buf = this.buf.subarray(length);
    return decodeStartup(packet);
  }

  /** The next typed message, or undefined until it is complete. */
  message(table: FrameLimits): Frame | undefined {
    if (this.buf.length < HEADER_LENGTH) return undefined;
    const code = this.buf[0]!;
    const bodyLength = checkFrame(code, this.buf.readInt32BE(1), table);
    const end = HEADER_LENGTH + bodyLength;
    if (this.buf.length < end) return undefined;
    const frame = this.buf.subarray(0, end);
    this.buf = this.buf.subarray(end);
    return { code, body: frame.subarray(HEADER_LENGTH), frame };
  }

  /** Hands over unread bytes (the relay's first input) and empties the buffer. */
  take(): Buffer {
    const rest = this.buf;
    this.buf = EMPTY;
    this.store = undefined;
    return rest;
  }
}

function decodeStartup(packet: Buffer): StartupPacket {
  const code = packet.readInt32BE(4);
  const fixed = (expected: number) => {
    if (packet.length !== expected) {
      throw new DrawbridgeError('PROTOCOL_ERROR', `startup packet code ${code} with length ${packet.length}`);
    }
  };
  switch (code) {
    case StartupCode.SSLRequest:
      fixed(8);
      return { kind: 'ssl' };
    case StartupCode.GSSENCRequest:
      fixed(8);
      return { kind: 'gssenc' };
    case StartupCode.CancelRequest:
    case StartupCode.PeerCancelRequest:
      fixed(CANCEL_REQUEST_LENGTH);
      return {
        kind: 'cancel',
        processId: packet.readInt32BE(8),
        secretKey: packet.readInt32BE(12),
        fromPeer: code === StartupCode.PeerCancelRequest,
      };
  }
  const major = code >>> 16;
  const minor = code & 0xffff;
  if (major !== 3) {
    throw new DrawbridgeError(
      'PROTOCOL_ERROR',
      `unsupported frontend protocol ${major}.${minor}: the agent speaks protocol 3.0`,
      'use a PostgreSQL client from version 7.4 or later',
    );
  }
  return { kind: 'startup', major, minor, params: decodeParams(packet) };
}

function decodeParams(packet: Buffer): Map<string, string> {
  const params = new Map<string, string>();
  let off = 8;
  for (;;) {
    const nameEnd = packet.indexOf(0, off);
    if (nameEnd < 0) break;
    if (nameEnd === off) {
      if (nameEnd !== packet.length - 1) break; // the terminator must be the last byte
      return params;
    }
    const valueEnd = packet.indexOf(0, nameEnd + 1);
    if (valueEnd < 0) break;
    params.set(packet.toString('utf8', off, nameEnd), packet.toString('utf8', nameEnd + 1, valueEnd));
    off = valueEnd + 1;
  }
  throw new DrawbridgeError('PROTOCOL_ERROR', 'invalid startup packet layout: expected name/value pairs');
}

/**
 * `body` is shorter than `bodyLength` when the message was cut at the capture limit; `cutSha256` then
 * is the SHA-256 (hex) of the whole body but its final byte: a Query's full text, whose terminator
 * that byte is.
 */
export type MessageCallback = (code: number, body: Buffer, bodyLength: number, cutSha256?: string) => void;

/** What MessageScanner does with a message code (the values of a code set). */
export const enum ScanMode {
  /** Framed and passed over. */
  Skip = 0,
  /** Handed to the callback with its body. */
  Capture = 1,
  /** Handed to the callback with an empty body as soon as its header is read: no copy, no view. */
  Notify = 2,
}

/**
 * Push-side framing for the relay. It walks frame headers in each TCP chunk without copying; the
 * chunk itself is relayed as is. Codes marked Capture in the code set are handed to the callback —
 * whole when contiguous (a view into the chunk), otherwise assembled, at most `captureLimit` bytes
 * (`body.length < bodyLength` then says the message was longer than what was kept); codes marked
 * Notify are handed over by code alone.
 */
export class MessageScanner {
  /** A header split across chunks is assembled here, byte by byte (no buffer per session). */
  private headerHave = 0;
  private headerLength = 0;
  private code = 0;
  private remaining = 0;
  private bodyLength = 0;
  private capture: Buffer | undefined;
  private captured = 0;
  /** Hashes a message longer than the capture limit as it streams past (rare: no cost otherwise). */
  private cutHash: Hash | undefined;

  constructor(
    private readonly table: FrameLimits,
    private readonly captureCodes: Uint8Array,
    private readonly captureLimit = 1 << 20,
  ) {}

  /** True between messages: injecting a message of our own now keeps the stream well-formed. */
  get atBoundary(): boolean {
    return this.headerHave === 0 && this.remaining === 0;
  }

  /**
   * Scans `chunk`; returns how many bytes were consumed: all of them, or with `untilBoundary` only up to
   * the end of the message in progress (0 when already at a boundary).
   */
  scan(chunk: Buffer, onMessage: MessageCallback, untilBoundary = false): number {
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (untilBoundary && this.atBoundary) return pos;
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, end - pos);
        if (this.capture && this.captured < this.capture.length) {
          this.captured += chunk.copy(this.capture, this.captured, pos, pos + n);
        }
        // All but the body's final byte.
        this.cutHash?.update(chunk.subarray(pos, n === this.remaining ? pos + n - 1 : pos + n));
        this.remaining -= n;
        pos += n;
        if (this.remaining === 0 && this.capture) this.deliver(onMessage);
        continue;
      }
      let code: number;
      let length: number;
      if (this.headerHave === 0 && end - pos >= HEADER_LENGTH) {
        code = chunk[pos]!;
        length = chunk.readInt32BE(pos + 1);
        pos += HEADER_LENGTH;
      } else {
        for (; this.headerHave < HEADER_LENGTH && pos < end; this.headerHave++, pos++) {
          if (this.headerHave === 0) {
            this.code = chunk[pos]!;
            this.headerLength = 0;
          } else {
            this.headerLength = (this.headerLength << 8) | chunk[pos]!; // signed int32, as readInt32BE
          }
        }
        if (this.headerHave < HEADER_LENGTH) return pos;
        this.headerHave = 0;
        code = this.code;
        length = this.headerLength;
      }
      const bodyLength = checkFrame(code, length, this.table);
      const mode = this.captureCodes[code];
      if (mode !== ScanMode.Capture) {
        this.remaining = bodyLength;
        if (mode === ScanMode.Notify) onMessage(code, EMPTY, bodyLength);
        // The whole body is in this chunk (most messages): passed over in one step.
        if (end - pos >= bodyLength) {
          pos += bodyLength;
          this.remaining = 0;
        }
      } else if (end - pos >= bodyLength) {
        onMessage(code, chunk.subarray(pos, pos + bodyLength), bodyLength);
        pos += bodyLength;
      } else {
        this.code = code;
        this.bodyLength = this.remaining = bodyLength;
        this.capture = Buffer.allocUnsafe(Math.min(bodyLength, this.captureLimit));
        this.captured = 0;
        if (bodyLength > this.captureLimit) this.cutHash = createHash('sha256');
      }
    }
    return pos;
  }

  private deliver(onMessage: MessageCallback): void {
    const body = this.capture!;
    this.capture = undefined;
    const hash = this.cutHash;
    this.cutHash = undefined;
    onMessage(this.code, body, this.bodyLength, hash?.digest('hex'));
  }
}

/** A code set for MessageScanner: `capture` codes with their bodies, `notify` codes by code alone. */
export function codeSet(capture: readonly number[], notify: readonly number[] = []): Uint8Array {
  const set = new Uint8Array(256);
  for (const c of notify) set[c] = ScanMode.Notify;
  for (const c of capture) set[c] = ScanMode.Capture;
  return set;
}
