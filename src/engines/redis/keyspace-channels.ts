// Pub/sub is not per DB: a standalone server publishes every DB's keyspace notifications to every
// subscriber, on channels that name the DB (`__keyspace@0__:<key>`, `__keyevent@0__:<event>`). A
// session of the Database on DB 3 that heard `__keyspace@0__:*` would learn DB 0's key names and
// writes, and one that published there would forge DB 0's events. So on a standalone server (without
// allow.redisServerWide) SUBSCRIBE and PUBLISH to another DB's notification channel are refused, and
// so is PSUBSCRIBE with a pattern that can match one (`*`, `__key*`), decided by running the pattern,
// as Redis's glob matcher reads it, against an automaton of those channel names.
import { SERVER_WIDE_GRANT } from '../../authz/commands.js';
import type { RedisCommand } from './parser.js';

/** The channel heads Redis 7 publishes keyspace notifications under, the DB number follows. */
const HEADS = ['__keyspace@', '__keyevent@'];
const UNDERSCORE = 0x5f;
const COLON = 0x3a;
const ZERO = 0x30;
const DEAD = -1;

/** The characters the automaton tells apart; any other leads nowhere before the channel's key. */
const ALPHABET = [...new Set([...HEADS.join(''), '_', ':', ...'0123456789'])].map((c) => c.charCodeAt(0));

/** A trie of HEADS: node → (byte → next node); a head's last byte leads to the DB number. */
const TRIE: Map<number, number>[] = [new Map()];
const AT_NUMBER = -2;
for (const head of HEADS) {
  let node = 0;
  for (let i = 0; i < head.length; i++) {
    const c = head.charCodeAt(i);
    if (i === head.length - 1) {
      TRIE[node]!.set(c, AT_NUMBER);
      break;
    }
    let next = TRIE[node]!.get(c);
    if (next === undefined) {
      next = TRIE.push(new Map()) - 1;
      TRIE[node]!.set(c, next);
    }
    node = next;
  }
}

/** DB numbers are C ints: at most 10 digits. So a channel's DB part ends within its first 24 bytes. */
const MAX_DIGITS = 10;

/**
 * Whether a channel or pattern reaches another DB's keyspace notifications (`own` is the session's
 * DB). States: trie nodes, then the DB number read so far (Redis writes it as %d: no leading zero),
 * k digits equal to own's or not, then the `__:` after it; TAIL: any key or event follows.
 */
export class OtherDbChannels {
  private readonly own: string;
  private readonly number: number;
  private readonly zero: number;
  private readonly under1: number;
  private readonly under2: number;
  private readonly tail: number;
  /** diff + k: k digits read, not own's first k. */
  private readonly diff: number;
  /** eq + k: k digits read, own's first k. */
  private readonly eq: number;

  /** `limit`: why the server's other DBs are out of bounds (db-boundary.ts serverWideLimit). */
  constructor(
    db: number,
    private readonly limit: string,
  ) {
    this.own = String(db);
    let n = TRIE.length;
    this.number = n++;
    this.zero = n++;
    this.under1 = n++;
    this.under2 = n++;
    this.tail = n++;
    this.diff = n;
    this.eq = n + MAX_DIGITS + 1;
  }

  /** The first channel (pattern) of a SUBSCRIBE (PSUBSCRIBE) that reaches another DB's notifications. */
  subscribed(cmd: RedisCommand): string | undefined {
    if (cmd.name === 'ssubscribe') return undefined; // shard channels carry no notifications
    const a = cmd.args;
    const pattern = cmd.name === 'psubscribe';
    for (let i = 1; i < a.length; i++) {
      if (pattern ? this.patternReaches(a[i]!) : this.isOther(a[i]!)) return a[i]!.toString('utf8', 0, 64);
    }
    return undefined;
  }

  subscribeRefusal(cmd: RedisCommand, channel: string): string {
    const hears =
      cmd.name === 'psubscribe'
        ? "matches other DBs' keyspace notification channels"
        : "is another DB's keyspace notification channel";
    const own = this.own;
    return (
      `${cmd.name.toUpperCase()} "${channel}" ${hears} (their key names and writes), and ${this.limit}; ` +
      `subscribe to this DB's (__keyspace@${own}__:*, __keyevent@${own}__:*), or: ${SERVER_WIDE_GRANT}`
    );
  }

  /** Why a PUBLISH is refused: to another DB's notification channel (a forged event); or undefined. */
  publishRefusal(cmd: RedisCommand): string | undefined {
    // The channel's first byte, read in place: only a `_` has the channel looked at.
    const first =
      cmd.spans !== undefined && cmd.argc! > 2 ? cmd.bytes![cmd.offset! + cmd.spans[2]!] : UNDERSCORE;
    if (first !== UNDERSCORE || cmd.args.length < 3 || !this.isOther(cmd.args[1]!)) return undefined;
    const channel = cmd.args[1]!.toString('utf8', 0, 64);
    return `PUBLISH to "${channel}" would forge another DB's keyspace notification, and ${this.limit}; ${SERVER_WIDE_GRANT}`;
  }

  /** Whether `channel` is another DB's notification channel (SUBSCRIBE, PUBLISH). */
  isOther(channel: Buffer): boolean {
    if (channel[0] !== UNDERSCORE) return false;
    let s = 0;
    for (let i = 0; i < channel.length && s !== DEAD; i++) {
      s = this.step(s, channel[i]!);
      if (s === this.tail) return true;
    }
    return false;
  }

  /**
   * Whether glob `pattern` (PSUBSCRIBE) matches some other DB's notification channel. Conservative:
   * a pattern that reaches the key or event part counts as matching, whatever the rest of it says.
   */
  patternReaches(pattern: Buffer): boolean {
    let states = new Set([0]);
    for (let i = 0; i < pattern.length;) {
      const token = tokenAt(pattern, i);
      i = token.next;
      const next = new Set<number>();
      if (token.star) {
        // Any string: every state reachable from these.
        const todo = [...states];
        for (const s of todo) {
          next.add(s);
          for (const c of ALPHABET) {
            const t = this.step(s, c);
            if (t !== DEAD && !next.has(t) && !todo.includes(t)) todo.push(t);
          }
        }
      } else {
        for (const s of states) {
          for (const c of ALPHABET) {
            if (!token.has(c)) continue;
            const t = this.step(s, c);
            if (t !== DEAD) next.add(t);
          }
        }
      }
      if (next.has(this.tail)) return true;
      if (next.size === 0) return false;
      states = next;
    }
    return states.has(this.tail);
  }

  private step(s: number, c: number): number {
    if (s < TRIE.length) {
      const t = TRIE[s]!.get(c);
      return t === undefined ? DEAD : t === AT_NUMBER ? this.number : t;
    }
    const digit = c >= ZERO && c <= ZERO + 9;
    const own = this.own;
    switch (s) {
      case this.number:
        if (!digit) return DEAD;
        if (c === ZERO) return this.zero;
        return c === own.charCodeAt(0) ? this.eq + 1 : this.diff + 1;
      case this.zero: // "0": another DB unless it is ours
        return c === UNDERSCORE && own !== '0' ? this.under1 : DEAD;
      case this.under1:
        return c === UNDERSCORE ? this.under2 : DEAD;
      case this.under2:
        return c === COLON ? this.tail : DEAD;
      case this.tail:
        return this.tail;
    }
    const equal = s > this.eq;
    const k = equal ? s - this.eq : s - this.diff; // digits read
    if (!digit) return c === UNDERSCORE && (!equal || k < own.length) ? this.under1 : DEAD;
    if (equal && k < own.length && c === own.charCodeAt(k)) return s + 1;
    return k < MAX_DIGITS ? this.diff + k + 1 : DEAD;
  }
}

interface Token {
  star: boolean;
  has(c: number): boolean;
  next: number;
}

const ANY = () => true;

/** The glob token at `i`, as Redis's stringmatchlen reads it (case-sensitive, as pub/sub matches). */
function tokenAt(p: Buffer, i: number): Token {
  const c = p[i]!;
  if (c === 0x2a) {
    while (p[i + 1] === 0x2a) i++; // consecutive stars are one
    return { star: true, has: ANY, next: i + 1 };
  }
  if (c === 0x3f) return { star: false, has: ANY, next: i + 1 };
  if (c === 0x5c && i + 1 < p.length) return literal(p[i + 1]!, i + 2);
  if (c !== 0x5b) return literal(c, i + 1);
  let j = i + 1;
  const not = p[j] === 0x5e;
  if (not) j++;
  const members = new Uint8Array(256);
  for (; ; j++) {
    if (j >= p.length) {
      j = p.length - 1; // an unclosed class ends with the pattern
      break;
    }
    if (p[j] === 0x5c && p.length - j >= 2) members[p[++j]!] = 1;
    else if (p[j] === 0x5d) break;
    else if (p.length - j >= 3 && p[j + 1] === 0x2d) {
      // Redis compares a range's ends and the byte as (signed) chars.
      let [a, b] = [signed(p[j]!), signed(p[j + 2]!)];
      if (a > b) [a, b] = [b, a];
      for (let x = 0; x < 256; x++) if (signed(x) >= a && signed(x) <= b) members[x] = 1;
      j += 2;
    } else members[p[j]!] = 1;
  }
  return { star: false, has: (x) => (members[x] === 1) !== not, next: j + 1 };
}

function signed(byte: number): number {
  return byte < 0x80 ? byte : byte - 0x100;
}

/** Whether glob `pattern` matches `s` as Redis's stringmatchlen does (case-sensitive). */
export function globMatches(pattern: Buffer, s: Buffer): boolean {
  let p = 0;
  let i = 0;
  // Where to try again after the last star: the pattern after it, and the next byte it may take.
  let starNext = -1;
  let starAt = 0;
  while (i < s.length) {
    if (p < pattern.length) {
      const t = tokenAt(pattern, p);
      if (t.star) {
        starNext = p = t.next;
        starAt = i;
        continue;
      }
      if (t.has(s[i]!)) {
        p = t.next;
        i++;
        continue;
      }
    }
    if (starNext < 0) return false;
    p = starNext;
    i = ++starAt;
  }
  while (p < pattern.length) {
    const t = tokenAt(pattern, p);
    if (!t.star) return false;
    p = t.next;
  }
  return true;
}

function literal(c: number, next: number): Token {
  return { star: false, has: (x) => x === c, next };
}
