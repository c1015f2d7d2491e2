// Query audit for the extended and simple protocols. The relay hands over each Query, Parse, Bind and
// Close as it passes; one `query` event is written per simple Query and per Bind (the moment a
// statement is about to run with its parameters). Parse only remembers the statement text by name.
import { auditValue } from '../../agent/audit.js';
import {
  decodeBind,
  decodeBindNames,
  decodeClose,
  decodeParse,
  decodeParsePrefix,
  decodeQuery,
} from './decoders.js';
import { FrontendCode } from './messages.js';

/** The frontend codes the auditor reads; the relay passes every other message without a look. */
export const AUDITED_CODES = [FrontendCode.Query, FrontendCode.Parse, FrontendCode.Bind, FrontendCode.Close];

/** Prepared statements remembered per session; beyond this the oldest are forgotten (audited by name). */
const MAX_STATEMENTS = 10_000;
const BINARY_SHOWN = 128;

export type QueryEventFields = Record<string, unknown>;

export class QueryAuditor {
  /** Created on the first Parse: most sessions (simple protocol) never need it. */
  private statements: Map<string, string> | undefined;

  constructor(private readonly emit: (fields: QueryEventFields) => void) {}

  /** MessageCallback for the frontend scanner. `body` is shorter than `bodyLength` when it was cut. */
  readonly onMessage = (code: number, body: Buffer, bodyLength: number): void => {
    const complete = body.length === bodyLength;
    const cut = complete ? undefined : { truncated: true, messageBytes: bodyLength };
    switch (code) {
      case FrontendCode.Query:
        this.emit({ query: auditValue(decodeQuery(body, complete)), ...cut });
        break;
      case FrontendCode.Parse:
        this.remember(body, complete);
        break;
      case FrontendCode.Bind:
        this.bind(body, complete, cut);
        break;
      case FrontendCode.Close: {
        const close = decodeClose(body);
        if (close.target === 'statement') this.statements?.delete(close.name);
        break;
      }
    }
  };

  private remember(body: Buffer, complete: boolean): void {
    const { statement, query } = complete ? decodeParse(body) : decodeParsePrefix(body);
    const text = complete ? auditValue(query) : auditValue(query) + '…[truncated]';
    const statements = (this.statements ??= new Map());
    statements.delete(statement);
    statements.set(statement, text);
    if (statements.size > MAX_STATEMENTS) statements.delete(statements.keys().next().value!);
  }

  private bind(body: Buffer, complete: boolean, cut: object | undefined): void {
    if (!complete) {
      const names = decodeBindNames(body);
      this.emit({ ...this.statementFields(names.statement), parameters: null, ...cut });
      return;
    }
    const bind = decodeBind(body);
    const parameters = bind.values.map((v, i) => (v === null ? null : formatParam(v, bind.binary[i]!)));
    this.emit({ ...this.statementFields(bind.statement), parameters });
  }

  private statementFields(statement: string): QueryEventFields {
    const query = this.statements?.get(statement) ?? null;
    return statement === '' ? { query } : { query, statement };
  }
}

/** Text parameters as text (cut by auditValue); binary ones as hex, at most BINARY_SHOWN bytes shown. */
export function formatParam(value: Buffer, binary: boolean): string {
  if (!binary) return auditValue(value);
  const shown = '\\x' + value.toString('hex', 0, Math.min(value.length, BINARY_SHOWN));
  return value.length > BINARY_SHOWN ? `${shown}…[${value.length} bytes]` : shown;
}
