// How the audit shows long values: cut, with the size and SHA-256 of the whole.
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import { escapeUnseen } from '../unseen.js';

/**
 * Long values are cut, with their size in bytes and the SHA-256 of the whole value (hex), so audit logs
 * stay readable and a value can still be matched against a known text.
 */
export function auditValue(value: string | Buffer, max: number): string {
  if (typeof value !== 'string' && value.length <= max) return utf8Value(value);
  if (value.length <= max) return value as string;
  const head = typeof value === 'string' ? value.slice(0, max) : value.subarray(0, max).toString('utf8');
  return head + cutMark(value);
}

/** What follows a cut value's head: `…[N bytes sha256:<hex>]` (nothing in it needs JSON escaping). */
export function cutMark(value: string | Buffer): string {
  const hash = createHash('sha256').update(value).digest('hex');
  const bytes = typeof value === 'string' ? Buffer.byteLength(value) : value.length;
  return `…[${bytes} bytes sha256:${hash}]`;
}

/**
 * Bytes as UTF-8 text. Bytes that are not UTF-8 come out as U+FFFD, as other bytes (and that character
 * itself) do: such a value gets cutMark's size and SHA-256 too, which tell them apart.
 */
export function utf8Value(value: Buffer): string {
  const text = value.toString('utf8');
  return text.includes('\ufffd') && !isUtf8(value) ? text + cutMark(value) : text;
}

/** JSON.stringify for the audit log: the same value, with what a viewer would hide escaped (unseen.ts). */
export function auditJson(value: unknown): string {
  return escapeUnseen(JSON.stringify(value));
}
