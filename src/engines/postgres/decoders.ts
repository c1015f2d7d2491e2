// Decoders for the few message bodies the agent reads. Each works on one complete body (a zero-copy view)
// and throws only DrawbridgeError PROTOCOL_ERROR on malformed input.
import { DrawbridgeError } from '../../errors.js';
import {
  AuthCode,
  type AuthRequest,
  type BindMessage,
  type CloseMessage,
  type ErrorFields,
  type FunctionCallMessage,
  type ParseMessage,
} from './messages.js';

const EMPTY = Buffer.alloc(0);

/** Longer names are decoded each time (BodyReader.cstringAmong): what a session keeps stays small. */
const MAX_KEPT_NAME = 128;
/** Statement names a session's Binds recognise without decoding them (BodyReader.cstringAmong). */
const RECENT_NAMES = 8;

/** Whether `body`'s bytes from `start` are ASCII and `name`'s characters (`name.length` of them). */
function isAsciiOf(body: Buffer, start: number, name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const b = body[start + i]!;
    if (b >= 0x80 || b !== name.charCodeAt(i)) return false;
  }
  return true;
}

/** Sequential reads over one message body; running past its end is a protocol error, never a RangeError. */
class BodyReader {
  private off = 0;

  constructor(
    private body: Buffer,
    private what: string,
  ) {}

  /** Reads `body` from its start (a reader reused across messages, as ValueCursor's). */
  reset(body: Buffer, what: string): void {
    this.body = body;
    this.what = what;
    this.off = 0;
  }

  /** Steps over `n` bytes; returns where they start. */
  need(n: number): number {
    const at = this.off;
    if (n < 0 || at + n > this.body.length) this.fail('is truncated');
    this.off += n;
    return at;
  }

  fail(problem: string): never {
    throw new DrawbridgeError('PROTOCOL_ERROR', `invalid ${this.what} message: ${problem}`);
  }

  int16(): number {
    return this.body.readInt16BE(this.need(2));
  }

  /** A count: PostgreSQL reads them unsigned (pq_getmsgint), so a Bind may carry up to 65,535 values. */
  uint16(): number {
    return this.body.readUInt16BE(this.need(2));
  }

  int32(): number {
    return this.body.readInt32BE(this.need(4));
  }

  bytes(n: number): Buffer {
    const at = this.need(n);
    return this.body.subarray(at, at + n);
  }

  /** Steps over `n` bytes the agent does not read (no view made of them). */
  skip(n: number): void {
    this.need(n);
  }

  cstringBytes(): Buffer {
    const start = this.off;
    return this.body.subarray(start, this.skipCstring());
  }

  /** Decoded straight from the body: no view allocated per string, no decoder call for ''. */
  cstring(): string {
    const start = this.off;
    const end = this.skipCstring();
    // Drivers bind the unnamed portal (and often statement) on every query.
    return end === start ? '' : this.body.toString('utf8', start, end);
  }

  /**
   * cstring(), but one of `recent` itself when the string's bytes are its characters, all ASCII; a
   * string not among them goes first (past `keep`, the oldest goes; a long one is not kept). Drivers
   * bind the same few statement (and portal) names again and again: reading one again builds no string
   * (nor, for the statement lookup, hashes one: V8 keeps a string's hash). ASCII bytes decode one
   * character each, so equal bytes are an equal string; any other byte decodes as usual.
   */
  cstringAmong(recent: string[], keep: number): string {
    const body = this.body;
    const start = this.off;
    const end = this.skipCstring();
    const n = end - start;
    if (n === 0) return '';
    for (let r = 0; r < recent.length; r++) {
      const name = recent[r]!;
      if (name.length === n && isAsciiOf(body, start, name)) return name;
    }
    const name = body.toString('utf8', start, end);
    if (n <= MAX_KEPT_NAME) {
      recent.unshift(name);
      if (recent.length > keep) recent.pop();
    }
    return name;
  }

  /** Steps past the string at the offset and its terminator; returns where the string ends. */
  private skipCstring(): number {
    const end = this.body.indexOf(0, this.off);
    if (end < 0) this.fail('missing string terminator');
    this.off = end + 1;
    return end;
  }

  rest(): Buffer {
    return this.body.subarray(this.off);
  }

  done(): void {
    if (this.off !== this.body.length) this.fail('unexpected trailing bytes');
  }
}

/** Query ('Q'): the statement text. A truncated capture yields its prefix. */
export function decodeQuery(body: Buffer, complete = true): Buffer {
  return body.subarray(0, queryEnd(body, complete));
}

/** decodeQuery's text, decoded straight from the body. */
export function decodeQueryText(body: Buffer, complete = true): string {
  return body.toString('utf8', 0, queryEnd(body, complete));
}

function queryEnd(body: Buffer, complete: boolean): number {
  const end = body.indexOf(0);
  if (end >= 0) return end;
  if (complete) new BodyReader(body, 'Query').fail('missing string terminator');
  return body.length;
}

/** Parse ('P'): statement name and text; parameter type OIDs are not audited. */
export function decodeParse(body: Buffer): ParseMessage {
  const r = new BodyReader(body, 'Parse');
  const statement = r.cstring();
  const query = r.cstringBytes();
  const types = r.uint16();
  r.skip(types * 4);
  r.done();
  return { statement, query };
}

/** What a Parse cut at the capture limit still tells: the statement name and the start of its text. */
export function decodeParsePrefix(body: Buffer): ParseMessage {
  const r = new BodyReader(body, 'Parse');
  const statement = r.cstring();
  return { statement, query: decodeQuery(r.rest(), false) };
}

/** Bind ('B'): portal, statement and parameter values (zero-copy views). */
export function decodeBind(body: Buffer): BindMessage {
  const c = new ValueCursor();
  c.openBind(body);
  const { portal, statement } = c;
  return { portal, statement, ...collect(c) };
}

/** FunctionCall ('F'): the function's OID and its arguments (zero-copy views). */
export function decodeFunctionCall(body: Buffer): FunctionCallMessage {
  const c = new ValueCursor();
  const oid = c.openFunctionCall(body);
  return { oid, ...collect(c) };
}

function collect(c: ValueCursor): { values: (Buffer | null)[]; binary: boolean[] } {
  const values: (Buffer | null)[] = [];
  const binary: boolean[] = [];
  while (c.next()) {
    values.push(c.start < 0 ? null : c.body.subarray(c.start, c.end));
    binary.push(c.binary);
  }
  return { values, binary };
}

/** The OID a FunctionCall cut at the capture limit still tells. */
export function decodeFunctionOid(body: Buffer): number {
  return new BodyReader(body, 'FunctionCall').int32() >>> 0;
}

/**
 * The values of a Bind or FunctionCall read in place, one at a time: no array and no view per value,
 * and one cursor per session reused for every message (the audit writes each value as it is read).
 * The whole message is checked: next() returns false only once the bytes after the values are valid.
 */
export class ValueCursor {
  body: Buffer = EMPTY;
  /** Bind's names (openBind). */
  portal = '';
  statement = '';
  /** The current value's bytes in `body`; `start` is -1 for SQL NULL. */
  start = 0;
  end = 0;
  binary = false;
  private readonly r = new BodyReader(EMPTY, 'Bind');
  /** Names of recent Binds' statements and portals, newest first (BodyReader.cstringAmong). */
  private readonly statements: string[] = [];
  private readonly portals: string[] = [];
  private bind = true;
  private formatsAt = 0;
  private formatCount = 0;
  private count = 0;
  private index = 0;

  openBind(body: Buffer): void {
    this.begin(body, true);
    this.portal = this.r.cstringAmong(this.portals, 1);
    this.statement = this.r.cstringAmong(this.statements, RECENT_NAMES);
    this.values();
  }

  /** Returns the function's OID. */
  openFunctionCall(body: Buffer): number {
    this.begin(body, false);
    const oid = this.r.int32() >>> 0;
    this.values();
    return oid;
  }

  /** Steps to the next value; false after the last one (the rest of the message checked). */
  next(): boolean {
    if (this.index === this.count) {
      this.finish();
      return false;
    }
    const i = this.index++;
    const len = this.r.int32();
    if (len < -1) this.r.fail(`invalid parameter length ${len}`);
    const format =
      this.formatCount === 0
        ? 0
        : this.body.readInt16BE(this.formatsAt + (this.formatCount === 1 ? 0 : i * 2));
    this.binary = format === 1;
    if (len === -1) {
      this.start = this.end = -1;
    } else {
      this.start = this.r.need(len);
      this.end = this.start + len;
    }
    return true;
  }

  private begin(body: Buffer, bind: boolean): void {
    this.body = body;
    this.bind = bind;
    this.r.reset(body, bind ? 'Bind' : 'FunctionCall');
  }

  /** Format codes, then the value count: the layout Bind and FunctionCall share. */
  private values(): void {
    const r = this.r;
    const formatCount = r.uint16();
    this.formatsAt = r.need(formatCount * 2);
    this.formatCount = formatCount;
    const count = r.uint16();
    if (formatCount > 1 && formatCount !== count)
      r.fail(`${formatCount} parameter formats for ${count} parameters`);
    this.count = count;
    this.index = 0;
  }

  /** Bind's result formats, FunctionCall's result format; then nothing. */
  private finish(): void {
    const r = this.r;
    if (this.bind) {
      const resultFormats = r.uint16();
      r.skip(resultFormats * 2);
    } else r.int16();
    r.done();
    // An idle session keeps no TCP chunk alive.
    this.body = EMPTY;
    r.reset(EMPTY, 'Bind');
  }
}

/** The names a truncated Bind capture still tells: enough to audit which statement ran. */
export function decodeBindNames(body: Buffer): { portal: string; statement: string } {
  const r = new BodyReader(body, 'Bind');
  return { portal: r.cstring(), statement: r.cstring() };
}

/** Close ('C'): which prepared statement or portal is released. */
export function decodeClose(body: Buffer): CloseMessage {
  const r = new BodyReader(body, 'Close');
  const kind = r.bytes(1)[0];
  if (kind !== 0x53 && kind !== 0x50) r.fail(`unknown target '${String.fromCharCode(kind ?? 0)}'`);
  const name = r.cstring();
  r.done();
  return { target: kind === 0x53 ? 'statement' : 'portal', name };
}

/** PasswordMessage ('p') as a password: the text up to its terminator. */
export function decodePassword(body: Buffer): string {
  const r = new BodyReader(body, 'PasswordMessage');
  const password = r.cstring();
  r.done();
  return password;
}

/** Authentication ('R') from the backend. */
export function decodeAuth(body: Buffer): AuthRequest {
  const r = new BodyReader(body, 'Authentication');
  const code = r.int32();
  switch (code) {
    case AuthCode.Ok:
      return { kind: 'ok' };
    case AuthCode.CleartextPassword:
      return { kind: 'cleartext' };
    case AuthCode.MD5Password:
      return { kind: 'md5', salt: r.bytes(4) };
    case AuthCode.SASL: {
      const mechanisms: string[] = [];
      for (let m = r.cstring(); m !== ''; m = r.cstring()) mechanisms.push(m);
      return { kind: 'sasl', mechanisms };
    }
    case AuthCode.SASLContinue:
      return { kind: 'sasl-continue', data: r.rest().toString('utf8') };
    case AuthCode.SASLFinal:
      return { kind: 'sasl-final', data: r.rest().toString('utf8') };
    default:
      return { kind: 'unsupported', code };
  }
}

/** BackendKeyData ('K'): the backend's cancel key. */
export function decodeBackendKey(body: Buffer): { processId: number; secretKey: number } {
  const r = new BodyReader(body, 'BackendKeyData');
  return { processId: r.int32(), secretKey: r.int32() };
}

const ERROR_FIELDS: Record<number, keyof ErrorFields> = {
  0x56: 'severity', // V: non-localized severity
  0x43: 'code', // C
  0x4d: 'message', // M
  0x44: 'detail', // D
  0x48: 'hint', // H
};

/** ErrorResponse / NoticeResponse fields the agent reports; lenient, since they only explain a failure. */
export function decodeErrorFields(body: Buffer): ErrorFields {
  const fields: ErrorFields = {};
  let off = 0;
  while (off < body.length && body[off] !== 0) {
    const end = body.indexOf(0, off + 1);
    if (end < 0) break;
    const key = ERROR_FIELDS[body[off]!];
    if (key) fields[key] = body.toString('utf8', off + 1, end);
    off = end + 1;
  }
  return fields;
}
