// RESP writers (agent → client replies, agent → backend commands). Fixed replies are precomputed;
// everything else is sized first and written into one allocation. Commands are RESP2 whatever the
// protocol (RESP3 changes only replies); replies the agent writes itself take the client's protocol
// where RESP3 differs (null, maps, sets, doubles, booleans, pushes).
import type { DrawbridgeError, ErrorCode } from '../../errors.js';
import {
  RespBigNumber,
  RespDouble,
  RespError,
  RespMap,
  RespPush,
  RespSet,
  type RespValue,
  RespVerbatim,
} from './reply-parser.js';

/** The protocol a client negotiated with HELLO (2 until it sends `HELLO 3`). */
export type RespVersion = 2 | 3;

export const OK = Buffer.from('+OK\r\n');
export const PONG = Buffer.from('+PONG\r\n');
export const QUEUED = Buffer.from('+QUEUED\r\n');
export const RESET = Buffer.from('+RESET\r\n');
export const NULL_BULK = Buffer.from('$-1\r\n');
/** RESP3's one null, for what RESP2 answers with a nil bulk or nil array. */
export const NULL = Buffer.from('_\r\n');
export const EXECABORT = Buffer.from('-EXECABORT Transaction discarded because of previous errors.\r\n');
export const NOPROTO = Buffer.from('-NOPROTO sorry, this protocol version is not supported.\r\n');

/** Error replies cannot carry line breaks; they would be read as the start of another reply. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, ' ');
}

function simpleString(text: string): Buffer {
  return Buffer.from(`+${oneLine(text)}\r\n`);
}

/** `-PREFIX message\r\n`; the prefix (ERR, NOPERM, WRONGPASS, ...) is what clients branch on. */
export function errorReply(prefix: string, message: string): Buffer {
  return Buffer.from(`-${prefix} ${oneLine(message)}\r\n`);
}

const PREFIX_BY_CODE: Partial<Record<ErrorCode, string>> = {
  ACCESS_DENIED: 'NOPERM',
  AUTHN_FAILED: 'WRONGPASS',
  BACKEND_AUTH_FAILED: 'WRONGPASS',
};

/** A typed agent error as a Redis error reply, with its hint. */
export function drawbridgeErrorReply(err: DrawbridgeError): Buffer {
  const hint = err.hint ? ` (hint: ${err.hint})` : '';
  return errorReply(PREFIX_BY_CODE[err.code] ?? 'ERR', `${err.message}${hint}`);
}

export function integerReply(n: number): Buffer {
  return Buffer.from(`:${n}\r\n`);
}

export function bulkReply(value: Buffer | string): Buffer {
  const body = typeof value === 'string' ? Buffer.from(value) : value;
  const out = Buffer.allocUnsafe(body.length + 16 + 2);
  let at = out.write(`$${body.length}\r\n`, 0, 'latin1');
  at += body.copy(out, at);
  at += out.write('\r\n', at, 'latin1');
  return out.subarray(0, at);
}

export function arrayHeader(count: number): Buffer {
  return Buffer.from(`*${count}\r\n`);
}

function decimalLength(n: number): number {
  return n < 10 ? 1 : n < 100 ? 2 : n < 1000 ? 3 : String(n).length;
}

/** A command as a RESP array of bulk strings, in a single allocation. */
export function encodeCommand(args: readonly (Buffer | string)[]): Buffer {
  let size = 1 + decimalLength(args.length) + 2;
  for (const a of args) {
    const n = typeof a === 'string' ? Buffer.byteLength(a) : a.length;
    size += 1 + decimalLength(n) + 2 + n + 2;
  }
  const out = Buffer.allocUnsafe(size);
  let at = out.write(`*${args.length}\r\n`, 0, 'latin1');
  for (const a of args) {
    const n = typeof a === 'string' ? Buffer.byteLength(a) : a.length;
    at += out.write(`$${n}\r\n`, at, 'latin1');
    at += typeof a === 'string' ? out.write(a, at) : a.copy(out, at);
    at += out.write('\r\n', at, 'latin1');
  }
  return out;
}

/** The null reply in the client's protocol. */
export function nullReply(proto: RespVersion): Buffer {
  return proto === 3 ? NULL : NULL_BULK;
}

/** `%<pairs>`: a RESP3 map of `pairs` key/value pairs follows (RESP2 clients get `*<2 × pairs>`). */
export function mapHeader(pairs: number, proto: RespVersion): Buffer {
  return proto === 3 ? Buffer.from(`%${pairs}\r\n`) : arrayHeader(2 * pairs);
}

function doubleText(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  return String(n);
}

function errorFrame(message: string, proto: RespVersion): Buffer {
  // A message with line breaks can only travel whole as a RESP3 blob error.
  if (proto === 3 && /[\r\n]/.test(message)) {
    return Buffer.concat([Buffer.from(`!${Buffer.byteLength(message)}\r\n`), Buffer.from(message), CRLF]);
  }
  return Buffer.from(`-${oneLine(message)}\r\n`);
}

/**
 * A decoded RESP3 value as the same reply decodes in RESP2 (what `decodeReply(encodeValue(v, 2))`
 * gives, without writing and reading it again): maps as flat arrays, sets and pushes as arrays,
 * doubles, big numbers and verbatim strings as bulks, booleans as 1/0. For the replies the agent
 * reads itself, whose parsers know the RESP2 shapes.
 */
export function resp2Value(v: RespValue): RespValue {
  if (v === null || typeof v === 'number' || typeof v === 'string' || Buffer.isBuffer(v)) return v;
  if (v instanceof RespError) return v;
  if (typeof v === 'boolean') return v ? 1 : 0;
  if (Array.isArray(v)) return v.map(resp2Value);
  if (v instanceof RespMap) return v.entries.flatMap(([k, x]) => [resp2Value(k), resp2Value(x)]);
  if (v instanceof RespSet || v instanceof RespPush) return v.items.map(resp2Value);
  if (v instanceof RespDouble) return Buffer.from(doubleText(v.value));
  if (v instanceof RespBigNumber) return Buffer.from(String(v.value));
  return v.text;
}

const CRLF = Buffer.from('\r\n');
const TRUE = Buffer.from('#t\r\n');
const FALSE = Buffer.from('#f\r\n');

/**
 * Any decoded value back to RESP (merged fan-out replies, locally built replies). With `proto` 3 the
 * RESP3 types are written as such; with 2 (the default) as Redis itself answers RESP2 clients: maps
 * as flat arrays, sets and pushes as arrays, doubles, big numbers and verbatim strings as bulks,
 * booleans as 1/0, null as a nil bulk. Attributes were dropped when decoding.
 */
export function encodeValue(value: RespValue, proto: RespVersion = 2): Buffer {
  const parts: Buffer[] = [];
  const aggregate = (type: string, items: RespValue[]): void => {
    parts.push(proto === 3 ? Buffer.from(`${type}${items.length}\r\n`) : arrayHeader(items.length));
    items.forEach(walk);
  };
  const walk = (v: RespValue): void => {
    if (v === null) parts.push(nullReply(proto));
    else if (typeof v === 'number') parts.push(integerReply(v));
    else if (typeof v === 'string') parts.push(simpleString(v));
    else if (typeof v === 'boolean') parts.push(proto === 3 ? (v ? TRUE : FALSE) : integerReply(v ? 1 : 0));
    else if (Buffer.isBuffer(v)) parts.push(bulkReply(v));
    else if (Array.isArray(v)) aggregate('*', v);
    else if (v instanceof RespError) parts.push(errorFrame(v.message, proto));
    else if (v instanceof RespMap) {
      parts.push(mapHeader(v.entries.length, proto));
      for (const [k, x] of v.entries) {
        walk(k);
        walk(x);
      }
    } else if (v instanceof RespSet) aggregate('~', v.items);
    else if (v instanceof RespPush) aggregate('>', v.items);
    else if (v instanceof RespDouble) {
      const text = doubleText(v.value);
      parts.push(proto === 3 ? Buffer.from(`,${text}\r\n`) : bulkReply(text));
    } else if (v instanceof RespBigNumber) {
      parts.push(proto === 3 ? Buffer.from(`(${v.value}\r\n`) : bulkReply(String(v.value)));
    } else if (v instanceof RespVerbatim) {
      if (proto === 2) parts.push(bulkReply(v.text));
      else parts.push(Buffer.concat([Buffer.from(`=${v.text.length + 4}\r\n${v.format}:`), v.text, CRLF]));
    }
  };
  walk(value);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
