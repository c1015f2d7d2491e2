// Audit fields for Redis commands: the name and its arguments, values longer than the Database's
// spec.audit.maxValueLength (in bytes) cut to their length and a hash (auditValue), and secrets
// replaced: AUTH and HELLO passwords, MIGRATE AUTH/AUTH2, ACL SETUSER password rules, CONFIG SET
// requirepass/masterauth (Valkey: primaryauth) and TLS key passphrases.
import { auditValue, cutMark } from '../../agent/audit.js';
import type { RedisCommand } from './parser.js';

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

/** Whether `cmd.args[i]` must not be written down. */
function secretArgs(cmd: RedisCommand): (i: number) => boolean {
  const a = cmd.args;
  switch (cmd.name) {
    case 'auth':
      return (i) => i === a.length - 1;
    case 'hello': {
      const at = authOptions(a, 2, true);
      return (i) => at.has(i);
    }
    case 'migrate': {
      const at = authOptions(a, 6, false); // after host port key db timeout
      return (i) => at.has(i);
    }
    case 'acl|setuser':
      return (i) => i > 2 && PASSWORD_RULE.test(a[i]!.toString('latin1'));
    case 'config|set':
      return (i) => i > 2 && i % 2 === 1 && SECRET_CONFIG.has(lower(a[i - 1]));
    default:
      return never;
  }
}

/** The arguments after the command name, as written to the audit log (each cut past `max` bytes). */
export function auditArgs(cmd: RedisCommand, max: number): string[] {
  const secret = secretArgs(cmd);
  const out = new Array<string>(cmd.args.length - 1);
  for (let i = 1; i < cmd.args.length; i++) out[i - 1] = secret(i) ? REDACTED : auditValue(cmd.args[i]!, max);
  return out;
}

/**
 * Room `writeArgsJson` may need with the same `max`: an argument of n bytes (cut at `max`) takes at
 * most 6 bytes per byte once JSON-escaped (`\u0000`), plus quotes, a comma and, when cut, its length
 * and full SHA-256 (`…[N bytes sha256:` + 64 hex + `]`, under 100 bytes).
 */
export function argsJsonMaxBytes(cmd: RedisCommand, max: number): number {
  let n = 2;
  for (let i = 1; i < cmd.args.length; i++) n += Math.min(cmd.args[i]!.length, max) * 6 + 128;
  return n;
}

/**
 * `JSON.stringify(auditArgs(cmd, max))` as UTF-8, written into `buf` at `at` (with argsJsonMaxBytes
 * of room); returns where it ends. Printable ASCII without `"` or `\` (most keys and values) needs
 * no escaping and is the same bytes in UTF-8, so it is copied as is: no string is made for it (a cut
 * one's head neither).
 */
export function writeArgsJson(buf: Buffer, at: number, cmd: RedisCommand, max: number): number {
  const secret = secretArgs(cmd);
  const a = cmd.args;
  buf[at++] = 0x5b; // [
  for (let i = 1; i < a.length; i++) {
    if (i > 1) buf[at++] = 0x2c; // ,
    const b = a[i]!;
    if (secret(i)) {
      at += buf.write(REDACTED_JSON, at, 'latin1');
    } else if (plainAscii(b, max)) {
      // Its head as is, then (when cut) the same mark auditValue adds, without making the head a string.
      buf[at++] = 0x22; // "
      if (b.length <= max) {
        buf.set(b, at);
        at += b.length;
      } else {
        buf.set(b.subarray(0, max), at);
        at += max;
        at += buf.write(cutMark(b), at, 'utf8');
      }
      buf[at++] = 0x22;
    } else {
      at += buf.write(JSON.stringify(auditValue(b, max)), at, 'utf8');
    }
  }
  buf[at++] = 0x5d; // ]
  return at;
}

/** Whether the first `max` bytes of `b` need no escaping. */
function plainAscii(b: Buffer, max: number): boolean {
  for (let i = 0, end = Math.min(b.length, max); i < end; i++) {
    const c = b[i]!;
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false;
  }
  return true;
}
