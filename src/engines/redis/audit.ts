// Audit fields for Redis commands: the name and its arguments, values longer than the Database's
// spec.audit.maxValueLength (in bytes) cut to their length and a hash (auditValue), and secrets
// replaced: AUTH and HELLO passwords, MIGRATE AUTH/AUTH2, ACL SETUSER password rules, CONFIG SET
// requirepass/masterauth (Valkey: primaryauth) and TLS key passphrases.
import { createHash } from 'node:crypto';
import { auditJson, auditValue, cutMark } from '../../agent/audit.js';
import { type RedisCommand, spanned } from './parser.js';

const REDACTED = '[redacted]';
const REDACTED_JSON = JSON.stringify(REDACTED);
const SECRET_CONFIG = new Set([
  'requirepass',
  'masterauth',
  'primaryauth',
  'tls-key-file-pass',
  'tls-client-key-file-pass',
]);
/**
 * An ACL rule setting a password (`>pw`, `<pw`, `#hash`, `!hash`), also where one argument holds
 * several rules or a selector (`on >pw`, `(~k >pw)`): the server refuses those, but the audit line is
 * written before it answers.
 */
const PASSWORD_RULE = /(^|[\s(])[><#!]/;

function lower(b: Buffer | undefined): string {
  return b === undefined ? '' : b.toString('latin1').toLowerCase();
}

/** Positions of secrets among options `from` onwards: AUTH pass, AUTH user pass, AUTH2 user pass. */
function authOptions(a: Buffer[], from: number, authTakesUser: boolean): Set<number> {
  const found = new Set<number>();
  for (let i = from; i < a.length; i++) {
    const opt = lower(a[i]);
    if (opt === 'keys') break; // MIGRATE: key names follow
    if (opt === 'auth') found.add((i += authTakesUser ? 2 : 1));
    else if (opt === 'auth2') found.add((i += 2));
    else if (opt === 'setname') i++;
  }
  return found;
}

const never = (): boolean => false;

/** Whether `cmd.args[i]` must not be written down (other commands' `args` are not made for this). */
function secretArgs(cmd: RedisCommand): (i: number) => boolean {
  switch (cmd.name) {
    case 'auth': {
      const last = cmd.args.length - 1;
      return (i) => i === last;
    }
    case 'hello': {
      const at = authOptions(cmd.args, 2, true);
      return (i) => at.has(i);
    }
    case 'migrate': {
      const at = authOptions(cmd.args, 6, false); // after host port key db timeout
      return (i) => at.has(i);
    }
    case 'acl|setuser': {
      const a = cmd.args;
      return (i) => i > 2 && PASSWORD_RULE.test(a[i]!.toString('latin1'));
    }
    case 'config|set': {
      const a = cmd.args;
      return (i) => i > 2 && i % 2 === 1 && SECRET_CONFIG.has(lower(a[i - 1]));
    }
    default:
      return never;
  }
}

/**
 * How much of one command its audit line shows: this many arguments, or until they may take
 * AUDIT_JSON_SHOWN bytes of JSON (counted as argsJsonMaxBytes does: six per byte shown, as if every one
 * were escaped); the rest is one mark with their count, size and SHA-256. A command may hold millions
 * of one-byte arguments (128 MiB by default), each up to nine bytes of JSON: written out whole, one
 * line would take gigabytes of the agent's memory. An MSET of 20,000 short keys stays whole.
 */
export const AUDIT_ARGS_SHOWN = 65_536;
export const AUDIT_JSON_SHOWN = 8 << 20;

/** The arguments after the command name, as written to the audit log (each cut past `max` bytes). */
export function auditArgs(cmd: RedisCommand, max: number): string[] {
  const secret = secretArgs(cmd);
  const a = cmd.args;
  const out: string[] = [];
  let room = 0;
  for (let i = 1; i < a.length; i++) {
    if (out.length === AUDIT_ARGS_SHOWN || room >= AUDIT_JSON_SHOWN) {
      out.push(restMark(a, i, secret));
      break;
    }
    const n = a[i]!.length;
    room += Math.min(n, max) * 6 + (n > max ? 110 : 3);
    out.push(secret(i) ? REDACTED : auditValue(a[i]!, max));
  }
  return out;
}

/**
 * The arguments from `from` on, not shown: `…[N more arguments, B bytes sha256:<hex>]`, the hash over
 * them as RESP bulk strings (`$len\r\n…\r\n` each, a secret as `[redacted]`), so a copy of the
 * command can be checked against it.
 */
function restMark(a: readonly Buffer[], from: number, secret: (i: number) => boolean): string {
  const hash = createHash('sha256');
  let bytes = 0;
  for (let i = from; i < a.length; i++) {
    const v = secret(i) ? Buffer.from(REDACTED) : a[i]!;
    hash.update(`$${v.length}\r\n`).update(v).update('\r\n');
    bytes += v.length;
  }
  const n = a.length - from;
  return `…[${n} more argument${n === 1 ? '' : 's'}, ${bytes} bytes sha256:${hash.digest('hex')}]`;
}

/**
 * Room `writeArgsJson` may need with the same `max`: an argument of n bytes (cut at `max`) takes at
 * most 6 bytes per byte once JSON-escaped (`\u0000`), plus quotes, a comma and, when cut, its length
 * and full SHA-256 (`…[N bytes sha256:` + 64 hex + `]`, under 100 bytes).
 */
export function argsJsonMaxBytes(cmd: RedisCommand, max: number): number {
  const { spans, argc } = spanned(cmd);
  let n = 2;
  for (let i = 2; i < 2 * argc; i += 2) n += Math.min(spans[i + 1]! - spans[i]!, max) * 6 + 128;
  return n;
}

/**
 * `JSON.stringify(auditArgs(cmd, max))` as UTF-8, written into `buf` at `at` (with argsJsonMaxBytes
 * of room); returns where it ends. Arguments are read in place (`spans`). Printable ASCII without `"`
 * or `\` (most keys and values) needs no escaping and is the same bytes in UTF-8: it is copied as it
 * is checked, and no string is made for it (a cut one's head neither).
 */
export function writeArgsJson(buf: Buffer, at: number, command: RedisCommand, max: number): number {
  const cmd = spanned(command);
  const { bytes, offset, spans, argc } = cmd;
  const secret = secretArgs(cmd);
  buf[at++] = 0x5b; // [
  for (let i = 1; i < argc; i++) {
    if (i > 1) buf[at++] = 0x2c; // ,
    const start = offset + spans[2 * i]!;
    const end = offset + spans[2 * i + 1]!;
    if (secret(i)) {
      at += buf.write(REDACTED_JSON, at, 'latin1');
      continue;
    }
    // Its head as is, then (when cut) the same mark auditValue adds, without making the head a string.
    const head = Math.min(end, start + max);
    buf[at] = 0x22; // "
    if (copyPlain(buf, at + 1, bytes, start, head)) {
      at += 1 + head - start;
      if (head < end) at += buf.write(cutMark(bytes.subarray(start, end)), at, 'utf8');
      buf[at++] = 0x22;
    } else {
      at += buf.write(auditJson(auditValue(bytes.subarray(start, end), max)), at, 'utf8');
    }
  }
  buf[at++] = 0x5d; // ]
  return at;
}

/** Copies `src[start, end)` to `buf` at `at` while no byte needs escaping; false at the first that does. */
function copyPlain(buf: Buffer, at: number, src: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = src[i]!;
    // c < 0x20 || c > 0x7e in one unsigned comparison.
    if ((c - 0x20) >>> 0 > 0x5e || c === 0x22 || c === 0x5c) return false;
    buf[at++] = c;
  }
  return true;
}
