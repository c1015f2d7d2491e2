// Query audit for the simple and extended protocols and FunctionCall. The relay hands over each client
// message that runs or prepares something, and the server's answers that settle prepared statements
// (statements.ts). One `query` event is written per simple Query, per Bind (the moment a statement is
// about to run with its parameters) and per FunctionCall, before the message reaches the database.
// Values are redacted (role passwords, redact.ts) and cut past the Database's
// spec.audit.maxValueLength, with the SHA-256 of the full text.
import { auditValue } from '../../agent/audit.js';
import {
  decodeBind,
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
/** A Parse text at most this long is remembered for the next Parse (one copy per session). */
const REPEAT_PARSE_BYTES = 4096;

export type QueryEventFields = Record<string, unknown>;

/**
 * Writes the event of a Bind whose statement is known: `{query: info.text, statement, parameters}`
 * (`statement` left out for the unnamed one). The session writes the part before `parameters` once
 * per statement, not per Bind.
 */
export type BindEmitter = (
  info: StatementInfo,
  statement: string | undefined,
  parameters: (string | null)[],
) => void;

/** Writes the event of a whole simple Query, `{query}`: the common case, written without a fields object. */
export type QueryTextEmitter = (query: string) => void;

export class QueryAuditor {
  private readonly statements = new StatementTracker();
  /**
   * The last complete Parse's text as sent and as audited. Drivers send the same Parse again and again
   * (the unnamed statement per query, pgbench -M extended): a repeat skips decoding, redaction and the
   * cut. Set on the first Parse: a session that sends none holds nothing.
   */
  private lastParse: { sql: Buffer; max: number; info: StatementInfo } | undefined;

  constructor(
    private readonly emit: (fields: QueryEventFields) => void,
    /** The longest value shown whole (the Database's spec.audit.maxValueLength, read per event). */
    private readonly maxValue: () => number,
    private readonly emitBind: BindEmitter = (info, statement, parameters) =>
      emit({ query: info.text, statement, parameters }),
    private readonly emitText: QueryTextEmitter = (query) => emit({ query }),
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
        const sql = decodeQueryText(body, complete);
        const plain = !NOTABLE_WORDS.test(sql);
        this.statements.simple(!plain && rewritesStatements(sql));
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
        return this.bind(body, complete, cut);
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
    const { statement, query } = complete ? decodeParse(body) : decodeParsePrefix(body);
    const max = this.maxValue();
    const last = this.lastParse;
    // The same bytes under the same limit audit as the same text (StatementInfo is never changed).
    if (complete && last?.max === max && last.sql.equals(query))
      return this.statements.parse(statement, last.info);
    const sql = query.toString('utf8');
    const text = complete ? this.sqlValue(sql) : this.sqlValue(sql) + '…[truncated]';
    const info = { text, rewrites: rewritesStatements(sql), secret: !complete || mentionsPassword(sql) };
    if (complete && query.length <= REPEAT_PARSE_BYTES) {
      // A copy of its own: a view would keep the whole TCP chunk (or a shared pool slab) alive.
      const copy = Buffer.allocUnsafeSlow(query.length);
      query.copy(copy);
      this.lastParse = { sql: copy, max, info };
    }
    this.statements.parse(statement, info);
  }

  private bind(body: Buffer, complete: boolean, cut: object | undefined): void {
    const bind = complete ? decodeBind(body) : undefined;
    const name = bind ? bind.statement : decodeBindNames(body).statement;
    this.statements.extended();
    const resolved = this.statements.resolve(name);
    // Running it may prepare or deallocate statements: what the agent knows becomes doubtful.
    if (resolved.text !== null ? resolved.rewrites : resolved.possible?.some((p) => p.rewrites)) {
      this.statements.forgetAll();
    }
    if (!bind) {
      const fields = statementFields(name, resolved);
      fields.parameters = null;
      return this.emit(Object.assign(fields, cut));
    }
    const max = this.maxValue();
    const hide = secret(resolved);
    const parameters = bind.values.map((v, i) =>
      v === null ? null : hide ? REDACTED : formatParam(v, bind.binary[i]!, max),
    );
    if (resolved.text !== null) return this.emitBind(resolved, name === '' ? undefined : name, parameters);
    const fields = statementFields(name, resolved);
    fields.parameters = parameters;
    this.emit(fields);
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

/** Text parameters as text (cut by auditValue); binary ones as hex, at most BINARY_SHOWN bytes shown. */
export function formatParam(value: Buffer, binary: boolean, max: number): string {
  if (!binary) return auditValue(value, max);
  const shown = '\\x' + value.toString('hex', 0, Math.min(value.length, BINARY_SHOWN));
  return value.length > BINARY_SHOWN ? `${shown}…[${value.length} bytes]` : shown;
}
