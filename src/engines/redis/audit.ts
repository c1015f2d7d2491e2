// Audit fields for Redis commands: the name and its arguments, long values cut to their length and a
// hash (auditValue), and secrets replaced: AUTH and HELLO passwords, MIGRATE AUTH, ACL SETUSER
// password rules, CONFIG SET requirepass/masterauth.
import { auditValue } from '../../agent/audit.js';
import type { RedisCommand } from './parser.js';

const REDACTED = '[redacted]';
const REDACTED_JSON = JSON.stringify(REDACTED);
const AUDIT_MAX = 256; // auditValue's default cut
const SECRET_CONFIG = new Set(['requirepass', 'masterauth', 'tls-key-file-pass', 'tls-client-key-file-pass']);

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
      return (i) => i > 2 && /^[><#!]/.test(a[i]!.toString('latin1', 0, 1));
    case 'config|set':
      return (i) => i > 2 && i % 2 === 1 && SECRET_CONFIG.has(lower(a[i - 1]));
    default:
      return never;
  }
}

/** The arguments after the command name, as written to the audit log. */
export function auditArgs(cmd: RedisCommand): string[] {
  const secret = secretArgs(cmd);
  const out = new Array<string>(cmd.args.length - 1);
  for (let i = 1; i < cmd.args.length; i++) out[i - 1] = secret(i) ? REDACTED : auditValue(cmd.args[i]!);
  return out;
}

/** `JSON.stringify(auditArgs(cmd))`, built without the intermediate strings and array. */
export function auditArgsJson(cmd: RedisCommand): string {
  const secret = secretArgs(cmd);
  const a = cmd.args;
  let out = '[';
  for (let i = 1; i < a.length; i++) {
    if (i > 1) out += ',';
    out += secret(i) ? REDACTED_JSON : argJson(a[i]!);
  }
  return out + ']';
}

/** One argument as a JSON string. Printable ASCII without `"` or `\` (most keys and values) needs no
 * escaping and decodes the same as latin1 or UTF-8, so it skips the UTF-8 decode and JSON escaper. */
function argJson(b: Buffer): string {
  if (b.length > AUDIT_MAX) return JSON.stringify(auditValue(b, AUDIT_MAX));
  for (let i = 0; i < b.length; i++) {
    const c = b[i]!;
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return JSON.stringify(b.toString('utf8'));
  }
  return `"${b.toString('latin1')}"`;
}
