// How the audit shows long values: cut, with the size and SHA-256 of the whole.
import { createHash } from 'node:crypto';

/**
 * Long values are cut, with their size in bytes and the SHA-256 of the whole value (hex), so audit logs
 * stay readable and a value can still be matched against a known text.
 */
export function auditValue(value: string | Buffer, max: number): string {
  if (value.length <= max) return typeof value === 'string' ? value : value.toString('utf8');
  const head = typeof value === 'string' ? value.slice(0, max) : value.subarray(0, max).toString('utf8');
  return head + cutMark(value);
}

/** What follows a cut value's head: `…[N bytes sha256:<hex>]` (nothing in it needs JSON escaping). */
export function cutMark(value: string | Buffer): string {
  const hash = createHash('sha256').update(value).digest('hex');
  const bytes = typeof value === 'string' ? Buffer.byteLength(value) : value.length;
  return `…[${bytes} bytes sha256:${hash}]`;
}
