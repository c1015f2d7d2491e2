// CLIENT TRACKING through the agent: what the session refuses before any router sees it. Standalone,
// each session has its own backend connection, so the invalidations Redis pushes on it belong to that
// session's client alone; the cluster router gives a tracking session node connections of its own
// (cluster/tracking.ts).
// - RESP3 only, on the client's own connection: REDIRECT names a backend connection id, which no
//   client owns through the agent, and RESP2 tracking needs REDIRECT, so both are refused.
// - BCAST: Redis pushes invalidations for every key written under a prefix without checking the
//   connection's key permissions (seen with Redis 7.0), which would tell a database user the names of
//   keys its ACL hides. So each prefix (no PREFIX: every key) must lie inside a key pattern the
//   database user may read, as the backend's ACL GETUSER reports them; else it is refused.
// Default mode (with OPTIN/OPTOUT, NOLOOP) needs no such check: Redis tracks only keys the connection
// read, which its ACL allowed.
// Either way what is tracked was allowed for the database user logged in when it was set up, and Redis
// keeps pushing for it whoever logs in next: while tracking is on, AUTH as another database user is
// refused (SessionLogin.auth) until CLIENT TRACKING OFF or RESET.
import { lowerAscii } from './command-name.js';
import type { CommandGuard, GuardContext } from './db-boundary.js';
import { aclUserField, rootPatterns } from './acl-user.js';
import type { RedisCommand } from './parser.js';

const REDIRECT =
  'CLIENT TRACKING ... REDIRECT is not available through the drawbridge agent: the id would name a backend connection no client owns; send HELLO 3 and track without REDIRECT, invalidations then arrive on this connection';
const RESP2 =
  'CLIENT TRACKING in RESP2 needs REDIRECT to another connection, which the drawbridge agent cannot honour; send HELLO 3 first, invalidations then arrive on this connection';
const BCAST_IN_MULTI =
  'CLIENT TRACKING ... BCAST inside MULTI is not available through the drawbridge agent (its prefixes are checked with the backend first); run it outside the transaction';
const WHY_BCAST =
  'Redis sends BCAST invalidations for every key under a prefix without checking key permissions';
const INSTEAD = 'or track without BCAST (invalidations only for keys this connection read)';

/** CLIENT TRACKING's arguments as Redis reads them (a malformed command gets the server's error). */
export interface TrackingRequest {
  /** undefined: neither ON nor OFF. */
  readonly mode: 'on' | 'off' | undefined;
  readonly redirect: boolean;
  readonly bcast: boolean;
  readonly noloop: boolean;
  readonly prefixes: readonly Buffer[];
  /** What CLIENT CACHING may then say. */
  readonly opt: 'optin' | 'optout' | undefined;
}

/** Read once per command: the guard reads it first, then the cluster router (cluster/tracking.ts). */
const requests = new WeakMap<RedisCommand, TrackingRequest>();

export function trackingRequest(cmd: RedisCommand): TrackingRequest {
  let req = requests.get(cmd);
  if (req === undefined) {
    req = parseTracking(cmd.args);
    requests.set(cmd, req);
  }
  return req;
}

function parseTracking(a: readonly Buffer[]): TrackingRequest {
  const word = a.length < 3 ? undefined : lowerAscii(a[2]!);
  const mode = word === 'on' || word === 'off' ? word : undefined;
  let redirect = false;
  let bcast = false;
  let noloop = false;
  let opt: TrackingRequest['opt'];
  const prefixes: Buffer[] = [];
  for (let i = 3; i < a.length; i++) {
    const o = lowerAscii(a[i]!);
    if (o === 'bcast') bcast = true;
    else if (o === 'noloop') noloop = true;
    else if (o === 'optin' || o === 'optout') opt = o;
    else if (o === 'redirect') redirect = true;
    else if (o === 'prefix' && i + 1 < a.length) prefixes.push(a[++i]!);
  }
  return { mode, redirect, bcast, noloop, prefixes, opt };
}

export const trackingGuard: CommandGuard = (cmd, s) => {
  const { mode, redirect, bcast, prefixes } = trackingRequest(cmd);
  // OFF needs nothing (it ends tracking, unless queued in a transaction that may never run).
  if (mode === 'off' && !s.inMulti) s.trackingUser = undefined;
  if (mode !== 'on') return undefined;
  if (redirect) return { refuse: REDIRECT };
  if (s.protocol !== 3) return { refuse: RESP2 };
  // Counted as on even if the backend then refuses it (or its transaction never runs): that only asks
  // for a CLIENT TRACKING OFF before the next user switch.
  if (!bcast) return void (s.trackingUser = s.dbUser);
  // The check below asks the backend, which would queue the question in the transaction.
  if (s.inMulti) return { refuse: BCAST_IN_MULTI };
  return {
    check: () => bcastRefusal(s, prefixes),
    passed: () => void (s.trackingUser = s.dbUser),
  };
};

/** Undefined when every prefix lies inside the database user's readable keys; else why not. */
async function bcastRefusal(s: GuardContext, prefixes: readonly Buffer[]): Promise<string | undefined> {
  const user = s.dbUser;
  const keys = await aclUserField(s, 'keys');
  if ('why' in keys) {
    return `CLIENT TRACKING BCAST is refused: ${WHY_BCAST}, and the agent cannot read database user "${user}"'s key patterns (ACL GETUSER: ${keys.why}); ${INSTEAD}`;
  }
  // Patterns that allow reading: `~p` (read and write), `%R~p`, `%RW~p`.
  const patterns = rootPatterns(keys.value, /^(?:%(?:R|RW|WR))?~(.*)$/i);
  const wanted = prefixes.length > 0 ? prefixes.map((p) => p.toString('latin1')) : [''];
  const outside = wanted.find((p) => !patterns.some((q) => covers(q, p)));
  if (outside === undefined) return undefined;
  const what = prefixes.length > 0 ? `PREFIX "${outside}"` : 'without PREFIX (every key)';
  const readable = patterns.length > 0 ? patterns.join(' ') : 'none';
  return `CLIENT TRACKING BCAST ${what} is outside the keys database user "${user}" may read (${readable}): ${WHY_BCAST}; track a prefix inside them, ${INSTEAD}`;
}

/**
 * Whether glob `pattern` matches every key starting with `prefix`: `*`, or a literal head followed by
 * one `*` that `prefix` starts with. Anything subtler is treated as not covering (refused).
 */
function covers(pattern: string, prefix: string): boolean {
  if (!pattern.endsWith('*')) return false;
  const head = pattern.slice(0, -1);
  return !/[*?[\\]/.test(head) && prefix.startsWith(head);
}
