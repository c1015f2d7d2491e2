// Query audit for the simple and extended protocols and FunctionCall. The relay hands over each client
// message that runs or prepares something, and the server's answers that settle prepared statements
// (statements.ts). One `query` event is written per simple Query, per Bind (the moment a statement is
// about to run with its parameters) and per FunctionCall, before the message reaches the database.
// Values are redacted (role passwords, redact.ts) and cut past the Database's
// spec.audit.maxValueLength, with the SHA-256 of the full text.
import { auditJson, auditValue, cutMark } from '../../agent/audit.js';
import {
  ValueCursor,
  decodeBindNames,
  decodeClose,
  decodeFunctionCall,
  decodeFunctionOid,
  decodeParse,
  decodeParsePrefix,
  decodeQueryText,
} from './decoders.js';
import { BackendCode, FrontendCode } from './messages.js';
import { codeSet } from './parser.js';
import { PlainValues, plainQueryLength, showsAsIs } from './plain-query.js';
import { PASSWORD_WORD, REDACTED, mentionsPassword, redactPasswords } from './redact.js';
import {
  REWRITE_WORDS,
  type StatementInfo,
  StatementTracker,
  type UnknownStatement,
  rewritesStatements,
} from './statements.js';

/** Client messages the auditor reads whole, and those it only needs to know were sent. */
const CLIENT_CAPTURED = [
  FrontendCode.Query,
  FrontendCode.Parse,
  FrontendCode.Bind,
  FrontendCode.Close,
  FrontendCode.FunctionCall,
];
const CLIENT_NOTIFIED = [
  FrontendCode.Sync,
  FrontendCode.Describe,
  FrontendCode.Execute,
  FrontendCode.Flush,
  FrontendCode.CopyDone,
  FrontendCode.CopyFail,
  FrontendCode.Terminate,
];
/** MessageScanner code sets: the relay passes every other message without a look. */
export const CLIENT_CODES = codeSet(CLIENT_CAPTURED, CLIENT_NOTIFIED);
export const SERVER_CODES = codeSet(
  [],
  [
    BackendCode.ParseComplete,
    BackendCode.CloseComplete,
    BackendCode.ReadyForQuery,
    BackendCode.ErrorResponse,
    BackendCode.CopyInResponse,
  ],
);

/**
 * SQL that rewritesStatements or redactPasswords acts on contains one of these words: most statements
 * contain none, and one pass rules both checks out.
 */
const NOTABLE_WORDS = new RegExp([...REWRITE_WORDS, PASSWORD_WORD].join('|'), 'i');

const BINARY_SHOWN = 128;
/** Parses remembered for their repeats (RecentParses): at most this many, of this many bytes together. */
const REPEAT_PARSES = 8;
const REPEAT_PARSE_BYTES = 4096;
const REDACTED_JSON = JSON.stringify(REDACTED);

export type QueryEventFields = Record<string, unknown>;

/**
 * Writes the event of a Bind whose statement is known: `{query: info.text, statement, parameters}`
 * (`statement` left out for the unnamed one), `parameters` given as JSON (an array of strings and
 * nulls). The session writes the part before `parameters` once per statement, not per Bind.
 */
export type BindEmitter = (info: StatementInfo, statement: string | undefined, parameters: string) => void;

/** Writes the event of a whole simple Query, `{query}`: the common case, written without a fields object. */
export type QueryTextEmitter = (query: string) => void;

/**
 * Writes the event `{query}` of a whole simple Query whose text is `body`'s first `length` bytes,
 * plain text that JSON shows as is (plain-query.ts): most statements, written without a string.
 */
export type PlainQueryEmitter = (body: Buffer, length: number) => void;

/** A Bind's event as BindEmitter's, its parameters given where they lie in the message (PlainValues). */
export type PlainBindEmitter = (
  info: StatementInfo,
  statement: string | undefined,
  values: PlainValues,
) => void;

export class QueryAuditor {
  private readonly statements = new StatementTracker();
  /** Set on the first Parse: a session that sends none holds nothing. */
  private recentParses: RecentParses | undefined;
  /** Reads each Bind's values in place (one per session). */
  private readonly values = new ValueCursor();
  /** Where a Bind's values lie when JSON shows each as is (one per session). */
  private readonly plainValues = new PlainValues();

  constructor(
    private readonly emit: (fields: QueryEventFields) => void,
    /** The longest value shown whole (the Database's spec.audit.maxValueLength, read per event). */
    private readonly maxValue: () => number,
    private readonly emitBind: BindEmitter = (info, statement, parameters) =>
      emit({ query: info.text, statement, parameters: JSON.parse(parameters) as unknown }),
    private readonly emitText: QueryTextEmitter = (query) => emit({ query }),
    private readonly emitPlain: PlainQueryEmitter = (body, length) =>
      emitText(body.toString('latin1', 0, length)),
    private readonly emitBindPlain: PlainBindEmitter = (info, statement, values) =>
      emitBind(info, statement, values.json()),
  ) {}

  /** MessageCallback for the client scanner. `body` is shorter than `bodyLength` when it was cut. */
  readonly onMessage = (code: number, body: Buffer, bodyLength: number, cutSha256?: string): void => {
    switch (code) {
      case FrontendCode.Sync:
        return this.statements.sync();
      case FrontendCode.Describe:
      case FrontendCode.Execute:
      case FrontendCode.Flush:
        return this.statements.extended();
      case FrontendCode.CopyDone:
      case FrontendCode.CopyFail:
        return this.statements.copyEnd();
    }
    const complete = body.length === bodyLength;
    const cut = complete ? undefined : { truncated: true, messageBytes: bodyLength };
    switch (code) {
      case FrontendCode.Query: {
        const length = complete ? plainQueryLength(body, this.maxValue()) : -1;
        if (length >= 0) {
          this.statements.simple(false);
          return this.emitPlain(body, length);
        }
        const sql = decodeQueryText(body, complete);
        const plain = !NOTABLE_WORDS.test(sql);
        // Cut at the capture limit, the rest may prepare or deallocate statements unseen.
        this.statements.simple(!complete || (!plain && rewritesStatements(sql)));
        // Cut at the capture limit: the head, and the size and SHA-256 of the whole text.
        if (cutSha256) {
          const head = redactPasswords(sql).slice(0, this.maxValue());
          return this.emit({ query: `${head}…[${bodyLength - 1} bytes sha256:${cutSha256}]`, ...cut });
        }
        const query = plain ? auditValue(sql, this.maxValue()) : this.sqlValue(sql);
        return cut ? this.emit({ query, ...cut }) : this.emitText(query);
      }
      case FrontendCode.Parse:
        return this.parse(body, complete);
      case FrontendCode.Bind:
        this.bind(body, complete, cut);
        // A view of the message would keep the client's chunk for as long as the session idles (the
        // value cursor lets go of it itself, once it has read the message to its end).
        return this.plainValues.release();
      case FrontendCode.Close: {
        const close = decodeClose(body);
        return this.statements.close(close.target === 'statement', close.name);
      }
      case FrontendCode.FunctionCall:
        return this.functionCall(body, complete, cut);
    }
  };

  /** MessageCallback for the server scanner: the answers that settle prepared statements. */
  readonly onServerMessage = (code: number): void => {
    switch (code) {
      case BackendCode.ParseComplete:
        return this.statements.parseComplete();
      case BackendCode.CloseComplete:
        return this.statements.closeComplete();
      case BackendCode.ReadyForQuery:
        return this.statements.readyForQuery();
      case BackendCode.ErrorResponse:
        return this.statements.error();
      case BackendCode.CopyInResponse:
        return this.statements.copyInResponse();
    }
  };

  private sqlValue(sql: string): string {
    return auditValue(redactPasswords(sql), this.maxValue());
  }

  private parse(body: Buffer, complete: boolean): void {
    const max = this.maxValue();
    const known = complete ? this.recentParses?.find(body, max) : undefined;
    if (known) return this.statements.parse(known.statement, known.info);
    const { statement, query } = complete ? decodeParse(body) : decodeParsePrefix(body);
    const sql = query.toString('utf8');
    const text = complete ? this.sqlValue(sql) : this.sqlValue(sql) + '…[truncated]';
    const info = {
      text,
      rewrites: !complete || rewritesStatements(sql),
      secret: !complete || mentionsPassword(sql),
    };
    if (complete) (this.recentParses ??= new RecentParses()).add(body, statement, max, info);
    this.statements.parse(statement, info);
  }

  private bind(body: Buffer, complete: boolean, cut: object | undefined): void {
    if (complete) this.values.openBind(body);
    const name = complete ? this.values.statement : decodeBindNames(body).statement;
    this.statements.extended();
    const resolved = this.statements.resolve(name);
    // Running it may prepare or deallocate statements: what the agent knows becomes doubtful.
    if (resolved.text !== null ? resolved.rewrites : resolved.possible?.some((p) => p.rewrites)) {
      this.statements.forgetAll();
    }
    if (!complete) {
      const fields = statementFields(name, resolved);
      fields.parameters = null;
      return this.emit(Object.assign(fields, cut));
    }
    const statement = name === '' ? undefined : name;
    // Most Binds: text values JSON shows as is, of a known statement that is not secret.
    if (resolved.text !== null && !resolved.secret) {
      if (this.valuesAsIs(body)) return this.emitBindPlain(resolved, statement, this.plainValues);
      this.values.openBind(body); // read again from the first value, by the string path
    }
    const parameters = this.parametersJson(secret(resolved));
    if (resolved.text !== null) return this.emitBind(resolved, statement, parameters);
    const fields = statementFields(name, resolved);
    fields.parameters = JSON.parse(parameters) as unknown;
    this.emit(fields);
  }

  /**
   * Reads the opened Bind's values into plainValues while each is NULL or a text value that JSON shows
   * as is within the value limit (the string path would write the same bytes); false at the first
   * other one.
   */
  private valuesAsIs(body: Buffer): boolean {
    const c = this.values;
    const plain = this.plainValues;
    const max = this.maxValue();
    plain.reset(body);
    while (c.next()) {
      if (c.start < 0) plain.add(-1, -1);
      else if (!c.binary && c.end - c.start <= max && showsAsIs(body, c.start, c.end))
        plain.add(c.start, c.end);
      else return false;
    }
    return true;
  }

  /**
   * The opened Bind's parameters as JSON, each written as it is read: the bytes JSON.stringify gives
   * for the array of formatted values (nulls, or REDACTED for a secret statement's).
   */
  private parametersJson(hide: boolean): string {
    const c = this.values;
    const max = this.maxValue();
    let json = '[';
    for (let first = true; c.next(); first = false) {
      if (!first) json += ',';
      if (c.start < 0) json += 'null';
      else json += hide ? REDACTED_JSON : auditJson(formatParamAt(c.body, c.start, c.end, c.binary, max));
    }
    return json + ']';
  }

  private functionCall(body: Buffer, complete: boolean, cut: object | undefined): void {
    // A function can run any SQL, including PREPARE and DEALLOCATE.
    this.statements.simple(true);
    if (!complete) return this.emit({ function: decodeFunctionOid(body), parameters: null, ...cut });
    const call = decodeFunctionCall(body);
    const max = this.maxValue();
    const parameters = call.values.map((v, i) => (v === null ? null : formatParam(v, call.binary[i]!, max)));
    this.emit({ function: call.oid, parameters });
  }
}

interface KnownParse {
  body: Buffer;
  statement: string;
  /** The value limit its text was cut by. */
  max: number;
  info: StatementInfo;
}

/**
 * The last few complete Parse bodies as sent, with their statement names and texts as audited. Drivers
 * send the same few Parses again and again (the unnamed statement per query: node-postgres with
 * parameters, pgbench -M extended, JDBC below prepareThreshold, each statement of a transaction in
 * turn): a repeat of a whole body (name, text and parameter types, byte for byte) under the same limit
 * is the same valid message, auditing as the same text (StatementInfo is never changed), so it skips
 * decoding, redaction and the cut. Newest first; the oldest go first.
 */
class RecentParses {
  private readonly parses: KnownParse[] = [];
  private bytes = 0;

  find(body: Buffer, max: number): KnownParse | undefined {
    for (let i = 0; i < this.parses.length; i++) {
      const p = this.parses[i]!;
      if (p.body.length === body.length && p.max === max && p.body.equals(body)) return p;
    }
    return undefined;
  }

  add(body: Buffer, statement: string, max: number, info: StatementInfo): void {
    if (body.length > REPEAT_PARSE_BYTES) return;
    // A copy of its own: a view would keep the whole TCP chunk (or a shared pool slab) alive.
    const copy = Buffer.allocUnsafeSlow(body.length);
    body.copy(copy);
    this.parses.unshift({ body: copy, statement, max, info });
    this.bytes += copy.length;
    while (this.parses.length > REPEAT_PARSES || this.bytes > REPEAT_PARSE_BYTES) {
      this.bytes -= this.parses.pop()!.body.length;
    }
  }
}

/** Parameters of a statement that sets a password (or may) are secrets. */
function secret(resolved: StatementInfo | UnknownStatement): boolean {
  if (resolved.text !== null) return resolved.secret;
  return resolved.possible?.some((p) => p.secret) ?? false;
}

function statementFields(name: string, resolved: StatementInfo | UnknownStatement): QueryEventFields {
  const statement = name === '' ? undefined : name;
  if (resolved.text !== null) return { query: resolved.text, statement };
  return {
    query: null,
    statement,
    queryUnknown: resolved.reason,
    possibleQueries: resolved.possible?.map((p) => p.text),
  };
}

/**
 * Text parameters as text (cut by auditValue); binary ones as hex, at most BINARY_SHOWN bytes shown
 * (then cutMark's size and SHA-256).
 */
export function formatParam(value: Buffer, binary: boolean, max: number): string {
  return formatParamAt(value, 0, value.length, binary, max);
}

/** formatParam of the bytes from `start` to `end` of `buf`, without a view of them when short. */
function formatParamAt(buf: Buffer, start: number, end: number, binary: boolean, max: number): string {
  const length = end - start;
  if (!binary) {
    const text = length <= max ? buf.toString('utf8', start, end) : '\ufffd';
    // Not UTF-8 (a client_encoding other than UTF8): auditValue adds the hash that tells bytes apart.
    return text.includes('\ufffd') ? auditValue(buf.subarray(start, end), max) : text;
  }
  const shown = '\\x' + buf.toString('hex', start, Math.min(end, start + BINARY_SHOWN));
  // Cut, the whole value is still pinned by its hash: a text value sent in binary is the same bytes.
  return length > BINARY_SHOWN ? shown + cutMark(buf.subarray(start, end)) : shown;
}
