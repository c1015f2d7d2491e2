// RESP2 writers (agent → client replies, agent → backend commands). Fixed replies are precomputed;
// everything else is sized first and written into one allocation.
import type { DrawbridgeError, ErrorCode } from '../../errors.js';
import { RespError, type RespValue } from './reply-parser.js';

export const OK = Buffer.from('+OK\r\n');
export const PONG = Buffer.from('+PONG\r\n');
export const QUEUED = Buffer.from('+QUEUED\r\n');
export const RESET = Buffer.from('+RESET\r\n');
export const NULL_BULK = Buffer.from('$-1\r\n');
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

/** Any decoded value back to RESP2 (merged fan-out replies, locally built arrays). */
export function encodeValue(value: RespValue): Buffer {
  const parts: Buffer[] = [];
  const walk = (v: RespValue): void => {
    if (v === null) parts.push(NULL_BULK);
    else if (typeof v === 'number') parts.push(integerReply(v));
    else if (typeof v === 'string') parts.push(simpleString(v));
    else if (Buffer.isBuffer(v)) parts.push(bulkReply(v));
    else if (v instanceof RespError) parts.push(Buffer.from(`-${oneLine(v.message)}\r\n`));
    else {
      parts.push(arrayHeader(v.length));
      v.forEach(walk);
    }
  };
  walk(value);
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}
