// An established session: bytes are relayed both ways as they arrive (one write per TCP chunk, with
// backpressure), while MessageScanner frames each direction to audit statements on the way in and to
// know where a message ends, so the agent can end a session with a well-formed FATAL of its own.

// The module's binding, not the global: globalThis.performance is an accessor, a getter call per read.
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import {
  type AuditEvent,
  type AuditEventType,
  type AuditEventWriter,
  MAX_BYTES_PER_UNIT,
  writeJsonFields,
} from '../../agent/audit.js';
import { AuditHold } from '../../agent/audit-hold.js';
import type { LatencySeries } from '../../agent/fast-histogram.js';
import type { LiveSession } from '../../agent/sessions.js';
import type { Identity } from '../../authn/identity.js';
import type { AccessRequest } from '../../authz/engine.js';
import { DrawbridgeError, isDrawbridgeError } from '../../errors.js';
import type { AgentRuntime } from '../../agent/engine.js';
import { CLIENT_CODES, QueryAuditor, type QueryEventFields, SERVER_CODES } from './audit.js';
import type { StatementInfo } from './statements.js';
import { fatalFor } from './errors.js';
import { BackendCode, FrontendCode } from './messages.js';
import { BACKEND_LIMITS, type MessageCallback, MessageScanner, frontendLimits } from './parser.js';
import { TERMINATE } from './serializer.js';

/** How long a closing socket may take to flush before it is destroyed. */
const FORCE_CLOSE_MS = 2_000;
/** Byte counters reach Prometheus in steps of this size (and at session end), not per chunk. */
const METRICS_STEP = 1 << 20;
const ignore = () => undefined;
/** What precedes a whole simple Query's text (JSON) in its `query` event. */
const QUERY_KEY = Buffer.from(',"query":');

/** The session's fields of `query` events (`,"type":…,"dbName":…`), as JSON and bytes. */
interface QueryPrefix {
  database: string;
  json: string;
  bytes: Buffer;
  /** `bytes`, then `,"query":`. */
  withQueryKey: Buffer;
}

export interface SessionParams {
  id: string;
  identity: Identity;
  dbUser: string;
  dbName: string;
  client: TLSSocket;
  backend: Socket;
  /** Bytes each side sent past the handshake, relayed first. */
  clientRest: Buffer;
  backendRest: Buffer;
  /** Extra `session.start` audit fields. */
  startFields: Record<string, unknown>;
  /** Called once when the session is over (releases its cancel key). */
  onEnd(): void;
}

export class PostgresSession implements LiveSession, AuditEventWriter {
  readonly id: string;
  readonly identity: Identity;
  private readonly dbUser: string;
  private readonly dbName: string;
  private readonly frontend: MessageScanner;
  private readonly backendFrames = new MessageScanner(BACKEND_LIMITS, SERVER_CODES);
  private readonly auditor = new QueryAuditor(
    (fields) => this.emitQuery(fields),
    () => this.agent.state.database.spec.audit.maxValueLength,
    (info, statement, parameters) => this.emitBind(info, statement, parameters),
    (query) => this.emitText(query),
  );
  private readonly client: TLSSocket;
  private readonly backend: Socket;
  private readonly onEnd: () => void;
  /** What `start` needs once; dropped then, so an idle session holds no startup bytes. */
  private startup: Pick<SessionParams, 'clientRest' | 'backendRest' | 'startFields'> | undefined;
  private readonly startedAt = Date.now();
  /** See prefix(). */
  private queryPrefix: QueryPrefix | undefined;
  /** The statement's own fields (JSON), while its event is being written. */
  private queryFields = '';
  /**
   * The session's fields and `,"query":…,"statement":…,"parameters":` of the statement the last Bind
   * ran, encoded once: a driver binds the same statement again and again.
   */
  private bindHead:
    { info: StatementInfo; statement: string | undefined; prefix: QueryPrefix; bytes: Buffer } | undefined;
  /**
   * While an event that ends with one value (a Bind's parameters, a whole Query's text) is written:
   * its fields up to that value, which queryFields then holds as JSON.
   */
  private eventHead: Buffer | undefined;
  private fromClient = 0;
  private toClient = 0;
  private counted = { fromClient: 0, toClient: 0 };
  /** Set once the session is ending; `fatal` is still to be sent when the backend reaches a boundary. */
  private ending: { reason: string; fatal?: Buffer } | undefined;
  private finished = false;
  /** The client sent Terminate: whichever socket closes first, the client ended the session. */
  private clientTerminated = false;
  private auditHold: AuditHold | undefined;
  private readonly roundTrips: LatencySeries;
  /** performance.now() when the round trip in flight began (Query or Sync); 0 when none is. */
  private roundTripAt = 0;

  constructor(
    private readonly agent: AgentRuntime,
    p: SessionParams,
  ) {
    this.id = p.id;
    this.identity = p.identity;
    this.dbUser = p.dbUser;
    this.dbName = p.dbName;
    this.client = p.client;
    this.backend = p.backend;
    this.onEnd = p.onEnd;
    this.startup = p;
    this.frontend = new MessageScanner(frontendLimits(agent.limits.maxRequestBytes), CLIENT_CODES);
    this.roundTrips = agent.metrics.commandDuration.seriesFor('postgres');
  }

  request(): AccessRequest {
    return { database: this.agent.state.database, dbUser: this.dbUser, dbName: this.dbName };
  }

  start(): void {
    const { clientRest, backendRest, startFields } = this.startup!;
    this.startup = undefined;
    this.client.on('data', this.relayToBackend);
    this.backend.on('data', this.relayToClient);
    this.client.once('close', () => this.closed('client disconnected'));
    this.backend.once('close', () => this.closed('the database closed the connection'));
    this.emit('session.start', startFields);
    if (backendRest.length > 0) this.relayToClient(backendRest);
    if (clientRest.length > 0) this.relayToBackend(clientRest);
    if (!this.ending) {
      this.client.resume();
      this.backend.resume();
    }
  }

  /** Ends the session with a FATAL naming `err` (policy revoked, TTL, agent shutdown). */
  terminate(err: DrawbridgeError): void {
    this.endWith(`${err.code}: ${err.message}`, fatalFor(err));
  }

  private readonly relayToBackend = (chunk: Buffer): void => {
    if (this.ending) return;
    if (this.agent.audit.held) return this.holdForAudit(chunk);
    this.fromClient += chunk.length;
    // Audit events are written before the statement reaches the database.
    if (this.scanned(this.frontend, chunk, this.onClientMessage))
      this.forward(this.client, this.backend, chunk);
  };

  /** Required audit mode and the audit log is behind: read nothing more until it catches up. */
  private holdForAudit(chunk: Buffer): void {
    this.auditHold ??= new AuditHold(this.client, this.agent.audit, (err) => {
      if (err) this.terminate(err);
      // A full backend resumes the client itself on 'drain' (forward).
      else if (!this.ending && !this.backend.writableNeedDrain) this.client.resume();
    });
    this.auditHold.hold(chunk);
  }

  private readonly relayToClient = (chunk: Buffer): void => {
    this.toClient += chunk.length;
    if (this.ending) return this.drainUntilBoundary(chunk);
    if (this.scanned(this.backendFrames, chunk, this.onServerMessage)) {
      this.forward(this.backend, this.client, chunk);
    }
  };

  private readonly onClientMessage: MessageCallback = (code, body, bodyLength, cutSha256) => {
    if (code === FrontendCode.Terminate) this.clientTerminated = true;
    else {
      // A round trip runs from the first Query or Sync to the ReadyForQuery that ends it (pipelined
      // ones count as one: the server answers them back to back).
      if ((code === FrontendCode.Query || code === FrontendCode.Sync) && this.roundTripAt === 0)
        this.roundTripAt = performance.now();
      this.auditor.onMessage(code, body, bodyLength, cutSha256);
    }
  };

  private readonly onServerMessage = (code: number): void => {
    if (code === BackendCode.ReadyForQuery && this.roundTripAt !== 0) {
      this.roundTrips.observe((performance.now() - this.roundTripAt) / 1000);
      this.roundTripAt = 0;
    }
    this.auditor.onServerMessage(code);
  };

  /** Frames (and audits) a chunk; a malformed one ends the session instead. */
  private scanned(scanner: MessageScanner, chunk: Buffer, onMessage: MessageCallback): boolean {
    try {
      scanner.scan(chunk, onMessage);
      return true;
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  /** Writes a chunk on; when `to` is full, `from` is paused until it drains (backpressure both ways). */
  private forward(from: Socket, to: Socket, chunk: Buffer): void {
    if (!to.write(chunk) && !from.isPaused()) {
      from.pause();
      // An ending session keeps the client paused; the backend still drains its last message.
      to.once('drain', () => (this.ending && from === this.client ? undefined : from.resume()));
    }
    const uncounted = this.fromClient + this.toClient - this.counted.fromClient - this.counted.toClient;
    if (uncounted > METRICS_STEP) this.countBytes();
  }

  /** While ending: relay the rest of the backend message in flight, then the FATAL, then close. */
  private drainUntilBoundary(chunk: Buffer): void {
    const fatal = this.ending?.fatal;
    if (!fatal) return;
    let n: number;
    try {
      n = this.backendFrames.scan(chunk, ignore, true);
    } catch {
      return this.destroy();
    }
    if (n > 0) this.client.write(chunk.subarray(0, n));
    if (this.backendFrames.atBoundary) this.closeWith(fatal);
  }

  private fail(err: unknown): void {
    const fields = { sessionId: this.id, err: (err as Error).message };
    if (isDrawbridgeError(err, 'MESSAGE_TOO_LARGE')) this.agent.limitExceeded('maxRequestBytes', fields);
    else this.agent.log.info(fields, 'postgres session protocol error');
    this.endWith(
      err instanceof DrawbridgeError ? `${err.code}: ${err.message}` : 'internal error',
      fatalFor(err),
    );
  }

  private endWith(reason: string, fatal: Buffer): void {
    if (this.ending) return;
    this.ending = { reason, fatal };
    this.client.pause();
    if (this.backendFrames.atBoundary) return this.closeWith(fatal);
    // A backend message is half relayed: finish it first, so the client can parse the FATAL.
    this.backend.resume();
    setTimeout(() => this.destroy(), FORCE_CLOSE_MS).unref();
  }

  private closeWith(fatal: Buffer): void {
    this.ending!.fatal = undefined;
    this.client.end(fatal);
    this.closeBackend();
    setTimeout(() => this.destroy(), FORCE_CLOSE_MS).unref();
  }

  /** A clean Terminate when the backend is between client messages; otherwise a plain disconnect. */
  private closeBackend(): void {
    if (this.frontend.atBoundary && this.backend.writable) this.backend.end(TERMINATE);
    else this.backend.destroy();
  }

  private destroy(): void {
    this.client.destroy();
    this.backend.destroy();
  }

  private closed(reason: string): void {
    this.ending ??= { reason: this.clientTerminated ? 'client disconnected' : reason };
    if (this.client.destroyed) this.closeBackend();
    // What the backend said last (e.g. its own FATAL from pg_terminate_backend) still reaches the client.
    else this.client.end();
    setTimeout(() => this.destroy(), FORCE_CLOSE_MS).unref();
    this.finish();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.agent.sessions.release(this.id);
    this.agent.releaseIdentity(this.identity);
    this.onEnd();
    this.countBytes();
    this.agent.metrics.sessionsActive.dec({ protocol: 'postgres' });
    this.emit('session.end', {
      reason: this.ending?.reason,
      durationMs: Date.now() - this.startedAt,
      bytesFromClient: this.fromClient,
      bytesToClient: this.toClient,
    });
  }

  private countBytes(): void {
    const bytes = this.agent.metrics.bytesTotal;
    bytes.inc({ protocol: 'postgres', direction: 'from_client' }, this.fromClient - this.counted.fromClient);
    bytes.inc({ protocol: 'postgres', direction: 'to_client' }, this.toClient - this.counted.toClient);
    this.counted = { fromClient: this.fromClient, toClient: this.toClient };
  }

  /**
   * `query` events are written per statement, straight into the audit batch: the session's fields
   * encoded once, then the statement's.
   */
  private emitQuery(fields: QueryEventFields): void {
    const audit = this.agent.audit;
    if (!audit.emitWith) return this.emit('query', fields);
    this.queryFields = JSON.stringify(fields);
    audit.emitWith(this.prefix().bytes.length + this.queryFields.length * MAX_BYTES_PER_UNIT, this);
    this.queryFields = '';
  }

  /** A whole simple Query: the same bytes as emitQuery's, without a fields object to build and walk. */
  private emitText(query: string): void {
    const audit = this.agent.audit;
    if (!audit.emitWith) return this.emit('query', { query });
    this.writeValue(this.prefix().withQueryKey, JSON.stringify(query));
  }

  /** A Bind of a known statement: the same bytes as emitQuery's, the statement's part cached. */
  private emitBind(info: StatementInfo, statement: string | undefined, parameters: string): void {
    const audit = this.agent.audit;
    if (!audit.emitWith) {
      return this.emit('query', {
        query: info.text,
        statement,
        parameters: JSON.parse(parameters) as unknown,
      });
    }
    const prefix = this.prefix();
    const head = this.bindHead;
    if (head?.info !== info || head.statement !== statement || head.prefix !== prefix) {
      const json = JSON.stringify({ query: info.text, statement, parameters: 0 });
      const bytes = Buffer.from(`${prefix.json},${json.slice(1, -2)}`);
      this.bindHead = { info, statement, prefix, bytes };
    }
    this.writeValue(this.bindHead!.bytes, parameters);
  }

  /**
   * Writes an event that ends with one JSON value: `head` (the session's fields on), then `json`.
   * Only for a sink with emitWith.
   */
  private writeValue(head: Buffer, json: string): void {
    this.eventHead = head;
    this.queryFields = json;
    this.agent.audit.emitWith!(head.length + json.length * MAX_BYTES_PER_UNIT + 1, this);
    this.eventHead = undefined;
    this.queryFields = '';
  }

  /** The session's own fields of `query` events, serialized once (per database name). */
  private prefix(): QueryPrefix {
    const database = this.agent.state.database.metadata.name;
    if (this.queryPrefix?.database !== database) {
      const event = JSON.stringify(this.event('query', {}));
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
    buf.set(head, at);
    at += head.length;
    at += buf.write(this.queryFields, at, 'utf8');
    buf[at] = 0x7d; // }
    return at + 1;
  }

  private emit(type: AuditEventType, fields: Record<string, unknown>): void {
    this.agent.audit.emit(this.event(type, fields));
  }

  private event(type: AuditEventType, fields: Record<string, unknown>): AuditEvent {
    return {
      type,
      sessionId: this.id,
      database: this.agent.state.database.metadata.name,
      protocol: 'postgres',
      user: this.identity.user,
      dbUser: this.dbUser,
      dbName: this.dbName,
      ...fields,
    };
  }
}
