// The session's database user's own ACL, as the backend reports it (ACL GETUSER on the session's
// connection), for what Redis does not check against it: CLIENT TRACKING BCAST prefixes (tracking.ts)
// and the channels PUBSUB CHANNELS lists (db-boundary.ts).
import type { GuardContext } from './db-boundary.js';
import { agentCommand } from './parser.js';
import { RespError, RespMap, type RespValue, decodeReply } from './reply-parser.js';

/** A field of the user's ACL GETUSER reply, or why it cannot be had (no right to ACL GETUSER...). */
export async function aclUserField(
  s: GuardContext,
  name: string,
): Promise<{ value: RespValue } | { why: string }> {
  const reply = decodeReply(await s.ask(agentCommand(['ACL', 'GETUSER', s.dbUser])));
  const value = reply instanceof RespError || reply === null ? undefined : field(reply, name);
  if (value !== undefined) return { value };
  return { why: reply instanceof RespError ? reply.message : 'no such user' };
}

/** A field of ACL GETUSER's reply: a map in RESP3, a flat [name, value, ...] array in RESP2. */
function field(reply: RespValue, name: string): RespValue | undefined {
  if (reply instanceof RespMap) return reply.get(name);
  if (!Array.isArray(reply)) return undefined;
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const k = reply[i];
    if ((Buffer.isBuffer(k) || typeof k === 'string') && k.toString() === name) return reply[i + 1];
  }
  return undefined;
}

/**
 * The user's root patterns of one kind: Redis 7 reports them in one space-separated string, each with
 * its mark (`~p`, `%R~p`, `%RW~p` for keys; `&p` for channels), Redis 6 a list of bare patterns.
 * Selectors are left out: what they allow, they allow only to the commands they name.
 */
export function rootPatterns(value: RespValue, mark: RegExp): string[] {
  if (Array.isArray(value)) return value.filter((k) => Buffer.isBuffer(k)).map((k) => k.toString('latin1'));
  if (!Buffer.isBuffer(value) && typeof value !== 'string') return [];
  const out: string[] = [];
  for (const rule of value.toString('latin1').split(' ')) {
    const m = mark.exec(rule);
    if (m) out.push(m[1]!);
  }
  return out;
}
