// Which prepared statement a Bind runs. A name means what the server accepted, not what a client sent:
// a Parse counts once its ParseComplete arrives, a Close once its CloseComplete. Client messages that
// the server answers are queued in order and matched against the answers, following the server's
// rules: after an error in an extended-protocol batch it skips everything until Sync (those Parses are
// never accepted); a Parse of the unnamed statement, and any simple Query, drop the unnamed statement;
// Sync and Flush sent during COPY FROM STDIN are ignored. SQL that may prepare or deallocate statements
// (PREPARE, DEALLOCATE, DISCARD, a FunctionCall) makes everything known so far doubtful.
//
// A Bind is audited when the client sends it, before any answer: a Parse still in flight in the same
// batch is what runs if the Bind runs at all (an error skips both); across a Sync the outcome is open,
// and the event lists the possible texts instead. A client that sends a simple Query or FunctionCall
// after extended messages without Sync (no driver does) would make errors unattributable: refused.
import { DrawbridgeError } from '../../errors.js';

/**
 * A statement text as audited (already redacted and cut), and what its whole SQL says: whether running
 * it may rewrite names, and whether its parameters are secrets (decided on the SQL, not the cut text).
 */
export interface StatementInfo {
  text: string;
  /** Its SQL may prepare, deallocate or discard statements (PREPARE, DEALLOCATE, DISCARD), or was cut. */
  rewrites: boolean;
  /** Its SQL mentions PASSWORD (or was cut before the agent saw it all): Bind parameters are redacted. */
  secret: boolean;
}

/** What the audit says when a Bind's statement text is not known for certain. */
export interface UnknownStatement {
  text: null;
  reason: string;
  /** Statements the name may stand for, when there are candidates. */
  possible?: StatementInfo[];
}

const enum Kind {
  Parse,
  Close,
  ClosePortal,
  Sync,
  Simple,
  CopyEnd,
}

interface Entry {
  kind: Kind;
  name: string;
  info: StatementInfo | undefined;
  seq: number;
  /** Why the text may not be what the name stands for (SQL sent since, a failed Parse), if so. */
  doubt: string | undefined;
}

/** Markers shared by all sessions: never changed. */
const constant = (kind: Kind): Entry =>
  Object.freeze({ kind, name: '', info: undefined, seq: 0, doubt: undefined });
const SYNC = constant(Kind.Sync);
const SIMPLE = constant(Kind.Simple);
const CLOSE_PORTAL = constant(Kind.ClosePortal);
const COPY_END = constant(Kind.CopyEnd);

/** Unanswered messages (or their statement text) beyond this end the session: memory stays bounded. */
const MAX_PENDING = 1 << 16;
const MAX_PENDING_TEXT = 4 << 20;
/** An emptied queue up to this long keeps its memory (see compact). */
const KEPT_QUEUE = 64;
/** Prepared statements remembered per session (count, text); beyond, the oldest are forgotten (unknown). */
const MAX_STATEMENTS = 10_000;
const MAX_STATEMENTS_TEXT = 4 << 20;
const MAX_POSSIBLE = 8;

const NOT_PREPARED: UnknownStatement = {
  text: null,
  reason: 'not prepared by a Parse the server accepted in this session (e.g. SQL PREPARE)',
};
const CLOSED: UnknownStatement = { text: null, reason: 'closed earlier in the same batch' };
const REWRITTEN = 'SQL sent since may have prepared or deallocated statements';
const UNNAMED_DROPPED =
  'a later Parse of the unnamed statement failed or was skipped: the server may have dropped it';
const IN_FLIGHT = 'the server had not yet answered an earlier Parse or Close of this name';
const AMBIGUOUS_NAME: UnknownStatement = {
  text: null,
  reason:
    'the name is not ASCII of at most 63 bytes: PostgreSQL keeps the first 63 bytes of a name, in its ' +
    'own encoding, so another name may stand for the same statement',
};

/**
 * PostgreSQL keys prepared statements by the first NAMEDATALEN - 1 bytes of their names, after
 * conversion from client_encoding: the agent, which decodes names as UTF-8, tells names apart exactly
 * as the server does only when they are ASCII (the same bytes in every encoding) and no longer.
 */
const MAX_NAME_BYTES = 63;

function exactName(name: string): boolean {
  if (name.length > MAX_NAME_BYTES) return false;
  for (let i = 0; i < name.length; i++) if (name.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** The words of SQL that may prepare, deallocate or discard prepared statements. */
export const REWRITE_WORDS = ['prepare', 'deallocate', 'discard'];
const REWRITES = new RegExp(`\\b(?:${REWRITE_WORDS.join('|')})\\b`, 'i');

/** True when SQL text may prepare, deallocate or discard prepared statements. */
export function rewritesStatements(sql: string): boolean {
  return REWRITES.test(sql);
}

function tooMuch(what: string): DrawbridgeError {
  return new DrawbridgeError(
    'TOO_MANY_UNANSWERED',
    `more than ${what} await an answer from the database`,
    'read the results of what you send before sending more',
  );
}

function lost(what: string): DrawbridgeError {
  return new DrawbridgeError(
    'PROTOCOL_ERROR',
    `the agent cannot tell which prepared statements the server accepted (${what}), so it cannot audit them`,
    'reconnect; send Sync after each extended-protocol batch, as drivers do',
  );
}

/**
 * Entries by statement name, the unnamed statement ('') in a field of its own: drivers parse it again
 * for every query (node-postgres, pgbench -M extended, JDBC below prepareThreshold), and a Map's
 * delete and set of the same key per query keep rehashing it (a new table every few queries, garbage
 * that outlives the young generation once the session is old).
 */
class ByName {
  private unnamed: Entry | undefined;
  private readonly named = new Map<string, Entry>();

  get size(): number {
    return this.named.size + (this.unnamed ? 1 : 0);
  }

  get(name: string): Entry | undefined {
    return name === '' ? this.unnamed : this.named.get(name);
  }

  set(name: string, e: Entry): void {
    if (name === '') this.unnamed = e;
    else this.named.set(name, e);
  }

  delete(name: string): void {
    if (name === '') this.unnamed = undefined;
    else this.named.delete(name);
  }

  forEach(fn: (e: Entry) => void): void {
    if (this.unnamed) fn(this.unnamed);
    this.named.forEach(fn);
  }

  /** The name to forget first: the oldest named statement, then the unnamed one (the newest). */
  oldest(): string | undefined {
    const first = this.named.keys().next();
    if (!first.done) return first.value;
    return this.unnamed ? '' : undefined;
  }
}

export class StatementTracker {
  /** Accepted Parses by name (the entry that was answered). */
  private readonly accepted = new ByName();
  /** The latest unanswered Parse or Close per statement name. */
  private readonly lastByName = new ByName();
  /** Characters of statement text held in `accepted`, and in Parses awaiting an answer. */
  private acceptedText = 0;
  private pendingText = 0;
  private queue: Entry[] = [];
  private head = 0;
  private seq = 0;
  /** `seq` of the latest Sync, simple Query or FunctionCall sent. */
  private syncSeq = 0;
  /** Extended-protocol messages were sent since the last Sync. */
  private extendedOpen = false;
  /** The server is skipping messages until Sync after an error, and no Sync was queued yet. */
  private skipping = false;
  /** The server is in COPY FROM STDIN, and the client has not ended it yet. */
  private copyIn = false;

  // Client → server, in the order sent.

  parse(name: string, info: StatementInfo): void {
    this.extendedOpen = true;
    if (this.skipping) return;
    if (this.copyIn) throw lost('a Parse during COPY');
    const entry: Entry = { kind: Kind.Parse, name, info, seq: ++this.seq, doubt: undefined };
    this.push(entry);
    this.pendingText += info.text.length;
    if (this.pendingText > MAX_PENDING_TEXT) throw tooMuch(`${MAX_PENDING_TEXT} characters of statements`);
    // Binds of a name the server may alias are never resolved (resolve): nothing to remember it by.
    if (name === '' || exactName(name)) this.lastByName.set(name, entry);
  }

  close(statement: boolean, name: string): void {
    this.extendedOpen = true;
    if (this.skipping) return;
    if (this.copyIn) throw lost('a Close during COPY');
    if (!statement) return this.push(CLOSE_PORTAL);
    const entry: Entry = { kind: Kind.Close, name, info: undefined, seq: ++this.seq, doubt: undefined };
    this.push(entry);
    if (exactName(name)) this.lastByName.set(name, entry);
    // It may close a statement the agent knows by another name (its first 63 bytes, another spelling).
    else this.forgetAll();
  }

  /** Bind, Describe, Execute or Flush. */
  extended(): void {
    this.extendedOpen = true;
  }

  sync(): void {
    this.extendedOpen = false;
    this.skipping = false;
    if (this.copyIn) return; // the server ignores it
    this.push(SYNC);
    this.syncSeq = ++this.seq;
  }

  /** A simple Query or a FunctionCall; `rewrites` when it may change prepared statements. */
  simple(rewrites: boolean): void {
    if (this.extendedOpen) {
      throw new DrawbridgeError(
        'PROTOCOL_ERROR',
        'a simple Query or FunctionCall arrived after extended-protocol messages without a Sync',
        'send Sync to end each extended-protocol batch (all maintained drivers do)',
      );
    }
    if (this.copyIn) throw lost('a Query during COPY');
    this.push(SIMPLE);
    this.syncSeq = ++this.seq;
    if (rewrites) this.forgetAll();
  }

  /** CopyDone or CopyFail. */
  copyEnd(): void {
    if (this.copyIn) this.copyIn = false;
    else this.push(COPY_END);
  }

  /** Everything known so far becomes doubtful: SQL may have changed what the names stand for. */
  forgetAll(): void {
    this.accepted.forEach((e) => (e.doubt = REWRITTEN));
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i]!;
      if (e.kind === Kind.Parse || e.kind === Kind.Close) e.doubt = REWRITTEN; // not the shared markers
    }
  }

  /** The statement a Bind sent now will run, as far as the agent can know. */
  resolve(name: string): StatementInfo | UnknownStatement {
    const pending = this.lastByName.get(name);
    if (pending) {
      if (pending.seq > this.syncSeq && !pending.doubt) return pending.info ?? CLOSED;
      // A name the server holds refuses every Parse until it is closed: those in flight fail.
      const held = name === '' ? undefined : this.accepted.get(name);
      if (held && !held.doubt && !this.closing(name)) return held.info!;
      return { text: null, reason: IN_FLIGHT, possible: this.possible(name) };
    }
    const known = this.accepted.get(name);
    if (!known) return name === '' || exactName(name) ? NOT_PREPARED : AMBIGUOUS_NAME;
    if (known.doubt) return { text: null, reason: known.doubt, possible: [known.info!] };
    return known.info!;
  }

  /** A Close of `name` awaits its answer. */
  private closing(name: string): boolean {
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i]!;
      if (e.kind === Kind.Close && e.name === name) return true;
    }
    return false;
  }

  private possible(name: string): StatementInfo[] {
    const out: StatementInfo[] = [];
    const known = this.accepted.get(name);
    if (known) out.push(known.info!);
    let omitted = 0;
    let rewrites = false;
    let secret = false;
    for (let i = this.head; i < this.queue.length; i++) {
      const e = this.queue[i]!;
      if (e.kind !== Kind.Parse || e.name !== name) continue;
      if (out.length < MAX_POSSIBLE) out.push(e.info!);
      else {
        omitted++;
        rewrites ||= e.info!.rewrites;
        secret ||= e.info!.secret;
      }
    }
    // The one that runs may be among those left out (the newest, after Close and Parse again): the list
    // says it is not whole, and what they may do still counts (parameters redacted, names doubted).
    if (omitted > 0) out.push({ text: `[${omitted} more not listed]`, rewrites, secret });
    return out;
  }

  // Server → client, in the order received.

  parseComplete(): void {
    const e = this.shift();
    if (e?.kind !== Kind.Parse) throw lost('ParseComplete without a Parse');
    this.settled(e);
    this.forget(e.name);
    if (e.name !== '' && !exactName(e.name)) return;
    this.accepted.set(e.name, e);
    this.acceptedText += e.info!.text.length;
    while (this.accepted.size > MAX_STATEMENTS || this.acceptedText > MAX_STATEMENTS_TEXT) {
      this.forget(this.accepted.oldest()!);
    }
  }

  closeComplete(): void {
    const e = this.shift();
    if (e?.kind === Kind.Close) {
      this.settled(e);
      this.forget(e.name);
    } else if (e?.kind !== Kind.ClosePortal) throw lost('CloseComplete without a Close');
  }

  readyForQuery(): void {
    const e = this.shift();
    if (e?.kind === Kind.Simple) this.forget('');
    else if (e?.kind !== Kind.Sync) throw lost('ReadyForQuery without a Sync or Query');
  }

  error(): void {
    this.copyIn = false;
    if (this.head < this.queue.length && this.queue[this.head]!.kind === Kind.Simple) return;
    // An extended-protocol message failed: the server skips everything up to the next Sync.
    for (; this.head < this.queue.length; this.head++) {
      const e = this.queue[this.head]!;
      if (e.kind === Kind.Sync) return this.compact();
      if (e.kind === Kind.Parse || e.kind === Kind.Close) this.settled(e);
      // The failing message may be a Parse of the unnamed statement, which drops the old one.
      const unnamed = e.kind === Kind.Parse && e.name === '' ? this.accepted.get('') : undefined;
      if (unnamed) unnamed.doubt ??= UNNAMED_DROPPED;
    }
    this.compact();
    this.skipping = true;
  }

  /** CopyInResponse: Sync messages sent since the COPY began, until CopyDone/CopyFail, are ignored. */
  copyInResponse(): void {
    while (this.head < this.queue.length && this.queue[this.head]!.kind === Kind.CopyEnd) this.head++;
    let i = this.head;
    if (i < this.queue.length && this.queue[i]!.kind === Kind.Simple) i++;
    for (; i < this.queue.length;) {
      const kind = this.queue[i]!.kind;
      if (kind === Kind.CopyEnd) {
        this.queue.splice(i, 1);
        return;
      }
      if (kind !== Kind.Sync) throw lost('a message other than Sync during COPY');
      this.queue.splice(i, 1);
    }
    this.copyIn = true;
  }

  private push(e: Entry): void {
    if (this.queue.length - this.head >= MAX_PENDING) throw tooMuch(`${MAX_PENDING} messages`);
    this.queue.push(e);
  }

  /** The oldest unanswered message, past CopyDone/CopyFail sent outside COPY (the server ignores those). */
  private shift(): Entry | undefined {
    while (this.head < this.queue.length && this.queue[this.head]!.kind === Kind.CopyEnd) this.head++;
    const e = this.queue[this.head];
    if (e) this.head++;
    this.compact();
    return e;
  }

  private compact(): void {
    if (this.head === this.queue.length) {
      // Popped empty, a short queue keeps its backing store: after `length = 0` the next push (each
      // Query's) would allocate a new one. A long one is let go.
      if (this.queue.length > KEPT_QUEUE) this.queue.length = 0;
      else while (this.queue.length > 0) this.queue.pop();
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private forget(name: string): void {
    const known = this.accepted.get(name);
    if (!known) return;
    this.acceptedText -= known.info!.text.length;
    this.accepted.delete(name);
  }

  /** An answered or skipped Parse or Close. */
  private settled(e: Entry): void {
    if (e.kind === Kind.Parse) this.pendingText -= e.info!.text.length;
    if (this.lastByName.get(e.name) === e) this.lastByName.delete(e.name);
  }
}
