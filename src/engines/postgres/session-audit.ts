// The `query` events of one PostgreSQL session, written straight into the audit batch: the session's
// own fields encoded once (per database name), then each statement's. A whole simple Query of plain
// text is copied from its message (plain-query.ts), a Bind of a known statement reuses the part of its
// event before the parameters, and anything else is written from its fields' JSON. A sink without
// emitWith gets the same events as objects.
import {
  type AuditEvent,
  type AuditEventType,
  type AuditEventWriter,
  MAX_BYTES_PER_UNIT,
  auditJson,
  writeJsonFields,
} from '../../agent/audit.js';
import { auditOverflow } from '../../agent/audit-hold.js';
import type { AgentRuntime } from '../../agent/engine.js';
import type { QueryEventFields } from './audit.js';
import { type PlainValues, writePlainQuery } from './plain-query.js';
import type { StatementInfo } from './statements.js';

/**
 * A statement whose event required mode dropped must not reach the server: thrown through the
 * message scanner, it ends the session before the chunk holding the statement is relayed.
 */
function mustRun(queued: boolean | void): void {
  if (queued === false) throw auditOverflow();
}

/** What precedes a whole simple Query's text (JSON) in its `query` event. */
const QUERY_KEY = Buffer.from(',"query":');

/**
 * Bind event heads kept per session: as many as the auditor's remembered Parses, of at most this many
 * bytes together (the newest always kept).
 */
const BIND_HEADS = 8;
const BIND_HEAD_BYTES = 8192;

interface BindHead {
  info: StatementInfo;
  statement: string | undefined;
  prefix: QueryPrefix;
  bytes: Buffer;
}

/** The session's fields of `query` events (`,"type":…,"dbName":…`), as JSON and bytes. */
interface QueryPrefix {
  database: string;
  json: string;
  bytes: Buffer;
  /** `bytes`, then `,"query":`. */
  withQueryKey: Buffer;
}

export class SessionAudit implements AuditEventWriter {
  /** See prefix(). */
  private queryPrefix: QueryPrefix | undefined;
  /** The statement's own fields (JSON), while its event is being written. */
  private queryFields = '';
  /**
   * The session's fields and `,"query":…,"statement":…,"parameters":` of the statements the last Binds
   * ran, each encoded once: a driver binds the same few statements again and again. Newest first.
   */
  private readonly bindHeads: BindHead[] = [];
  private bindHeadBytes = 0;
  /**
   * While an event that ends with one value (a Bind's parameters, a whole Query's text) is written:
   * its fields up to that value, which queryFields then holds as JSON.
   */
  private eventHead: Buffer | undefined;
  /** While a plain Query's event is written (plain()): the message body holding its text, and its length. */
  private plainBody: Buffer | undefined;
  private plainLength = 0;
  /** While a Bind's event is written from its values in place (bindPlain()). */
  private plainValues: PlainValues | undefined;

  constructor(
    private readonly agent: AgentRuntime,
    private readonly sessionId: string,
    private readonly user: string,
    private readonly dbUser: string,
    private readonly dbName: string,
  ) {}

  /**
   * `query` events are written per statement, straight into the audit batch: the session's fields
   * encoded once, then the statement's.
   */
  query(fields: QueryEventFields): void {
    const audit = this.agent.audit;
    if (!audit.emitWith) return mustRun(this.emit('query', fields));
    this.queryFields = auditJson(fields);
    const queued = audit.emitWith(
      this.prefix().bytes.length + this.queryFields.length * MAX_BYTES_PER_UNIT,
      this,
    );
    this.queryFields = '';
    mustRun(queued);
  }

  /** A whole simple Query: the same bytes as query()'s, without a fields object to build and walk. */
  text(query: string): void {
    const audit = this.agent.audit;
    if (!audit.emitWith) return mustRun(this.emit('query', { query }));
    this.writeValue(this.prefix().withQueryKey, auditJson(query));
  }

  /** A whole simple Query of plain text: text()'s bytes, the text copied from the message. */
  plain(body: Buffer, length: number): void {
    const audit = this.agent.audit;
    if (!audit.emitWith) return mustRun(this.emit('query', { query: body.toString('latin1', 0, length) }));
    const head = (this.eventHead = this.prefix().withQueryKey);
    this.plainBody = body;
    this.plainLength = length;
    const queued = audit.emitWith(head.length + length + 3, this);
    this.eventHead = undefined;
    this.plainBody = undefined;
    mustRun(queued);
  }

  /** A Bind of a known statement: the same bytes as query()'s, the statement's part cached. */
  bind(info: StatementInfo, statement: string | undefined, parameters: string): void {
    const audit = this.agent.audit;
    if (!audit.emitWith) {
      const event = { query: info.text, statement, parameters: JSON.parse(parameters) as unknown };
      return mustRun(this.emit('query', event));
    }
    this.writeValue(this.bindHeadOf(info, statement), parameters);
  }

  /** A Bind of a known statement whose values JSON shows as is: bind()'s bytes, the values copied. */
  bindPlain(info: StatementInfo, statement: string | undefined, values: PlainValues): void {
    const audit = this.agent.audit;
    if (!audit.emitWith) return this.bind(info, statement, values.json());
    const head = (this.eventHead = this.bindHeadOf(info, statement));
    this.plainValues = values;
    const queued = audit.emitWith(head.length + values.jsonBytes + 1, this);
    this.eventHead = undefined;
    this.plainValues = undefined;
    mustRun(queued);
  }

  /** The event of a Bind of `info` up to its parameters, kept for the next Binds of the same. */
  private bindHeadOf(info: StatementInfo, statement: string | undefined): Buffer {
    const prefix = this.prefix();
    const heads = this.bindHeads;
    for (let i = 0; i < heads.length; i++) {
      const head = heads[i]!;
      if (head.info === info && head.statement === statement && head.prefix === prefix) return head.bytes;
    }
    const json = auditJson({ query: info.text, statement, parameters: 0 });
    const bytes = Buffer.from(`${prefix.json},${json.slice(1, -2)}`);
    heads.unshift({ info, statement, prefix, bytes });
    this.bindHeadBytes += bytes.length;
    while (heads.length > BIND_HEADS || (heads.length > 1 && this.bindHeadBytes > BIND_HEAD_BYTES)) {
      this.bindHeadBytes -= heads.pop()!.bytes.length;
    }
    return bytes;
  }

  /**
   * Writes an event that ends with one JSON value: `head` (the session's fields on), then `json`.
   * Only for a sink with emitWith.
   */
  private writeValue(head: Buffer, json: string): void {
    this.eventHead = head;
    this.queryFields = json;
    const queued = this.agent.audit.emitWith!(head.length + json.length * MAX_BYTES_PER_UNIT + 1, this);
    this.eventHead = undefined;
    this.queryFields = '';
    mustRun(queued);
  }

  /** The session's own fields of `query` events, serialized once (per database name). */
  private prefix(): QueryPrefix {
    const database = this.agent.state.database.metadata.name;
    if (this.queryPrefix?.database !== database) {
      const event = auditJson(this.event('query', {}));
      const json = `,${event.slice(1, -1)}`;
      const bytes = Buffer.from(json);
      const withQueryKey = Buffer.concat([bytes, QUERY_KEY]);
      this.queryPrefix = { database, json, bytes, withQueryKey };
    }
    return this.queryPrefix;
  }

  writeAuditEvent(buf: Buffer, at: number): number {
    const head = this.eventHead;
    if (!head) {
      const prefix = this.queryPrefix!.bytes;
      buf.set(prefix, at);
      return writeJsonFields(buf, at + prefix.length, this.queryFields);
    }
    if (this.plainBody) return writePlainQuery(buf, at, head, this.plainBody, this.plainLength);
    buf.set(head, at);
    at += head.length;
    if (this.plainValues) {
      at = this.plainValues.write(buf, at);
      buf[at] = 0x7d; // }
      return at + 1;
    }
    at += buf.write(this.queryFields, at, 'utf8');
    buf[at] = 0x7d; // }
    return at + 1;
  }

  /** False: required mode dropped it (see AuditSink.emit). */
  emit(type: AuditEventType, fields: Record<string, unknown>): boolean {
    return this.agent.audit.emit(this.event(type, fields)) !== false;
  }

  private event(type: AuditEventType, fields: Record<string, unknown>): AuditEvent {
    return {
      type,
      sessionId: this.sessionId,
      database: this.agent.state.database.metadata.name,
      protocol: 'postgres',
      user: this.user,
      dbUser: this.dbUser,
      dbName: this.dbName,
      ...fields,
    };
  }
}
