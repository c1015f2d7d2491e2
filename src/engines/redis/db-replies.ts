// Replies of a standalone server that list every DB, cut to the session's own DB (db-boundary.ts
// applies them where no role grants allow.redisServerWide): CLIENT LIST keeps the clients whose
// current DB is the session's, INFO the session's DB's keyspace lines, PUBSUB CHANNELS the channels
// the database user may use, but other DBs' keyspace notification channels (their key names). An
// error reply passes as is.
import { type OtherDbChannels, globMatches } from './keyspace-channels.js';
import { decodeReply } from './reply-parser.js';
import { encodeCommand } from './serializer.js';

const CRLF = 0x0d;
const VERBATIM = 'txt:';

/**
 * A bulk string (RESP2) or a verbatim string (RESP3, `txt:` text) reply with its text replaced by
 * `edit(text)`; anything else (an error) unchanged.
 */
function editText(reply: Buffer, edit: (text: string) => string): Buffer {
  const type = reply[0];
  if (type !== 0x24 && type !== 0x3d) return reply; // $ or =
  const head = reply.indexOf(CRLF);
  if (head < 0 || reply[1] === 0x2d) return reply; // $-1
  const len = Number(reply.toString('latin1', 1, head));
  const start = head + 2 + (type === 0x3d ? VERBATIM.length : 0); // a verbatim string's length counts `txt:`
  const text = edit(reply.toString('latin1', start, head + 2 + len));
  const body = type === 0x3d ? VERBATIM + text : text;
  return Buffer.from(
    `${String.fromCharCode(type)}${Buffer.byteLength(body, 'latin1')}\r\n${body}\r\n`,
    'latin1',
  );
}

/** CLIENT LIST: the lines (one per client, `\n`-ended) whose `db=` field is `db`. */
export function ownClients(reply: Buffer, db: number): Buffer {
  const field = ` db=${db} `;
  return editText(reply, (text) =>
    text
      .split('\n')
      .filter((line) => line.includes(field))
      .map((line) => `${line}\n`)
      .join(''),
  );
}

/** INFO: without the lines about other DBs (`db0:keys=...`; Redis 8's `db0_distrib_...` too). */
export function ownKeyspace(reply: Buffer, db: number): Buffer {
  const own = `db${db}`;
  return editText(reply, (text) =>
    text
      .split('\r\n')
      .filter((line) => {
        const m = /^db\d+[:_]/.exec(line);
        return m === null || m[0].slice(0, -1) === own;
      })
      .join('\r\n'),
  );
}

/**
 * PUBSUB CHANNELS / SHARDCHANNELS: only the channels one of `patterns` (the database user's ACL
 * channel patterns, which Redis does not apply to these) matches, without other DBs' keyspace
 * notification channels (`other`).
 */
export function ownChannels(reply: Buffer, patterns: readonly Buffer[], other?: OtherDbChannels): Buffer {
  if (reply[0] !== 0x2a) return reply; // an array of channel names, in RESP2 and RESP3
  const names = decodeReply(reply);
  if (!Array.isArray(names)) return reply;
  const kept = names.filter(
    (n) => Buffer.isBuffer(n) && !other?.isOther(n) && patterns.some((p) => globMatches(p, n)),
  ) as Buffer[];
  return kept.length === names.length ? reply : encodeCommand(kept);
}
