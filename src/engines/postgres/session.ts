// An established session: bytes are relayed both ways as they arrive (one write per TCP chunk, with
// backpressure), while MessageScanner frames each direction to audit statements on the way in and to
// know where a message ends, so the agent can end a session with a well-formed FATAL of its own.

// The module's binding, not the global: globalThis.performance is an accessor, a getter call per read.
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { AuditHold, auditOverflow } from '../../agent/audit-hold.js';
import { readDirect } from '../../agent/direct-read.js';
import { limitOf } from '../../agent/limits.js';
import type { LatencySeries } from '../../agent/fast-histogram.js';
import type { LiveSession } from '../../agent/sessions.js';
import type { Identity } from '../../authn/identity.js';
import type { AccessRequest } from '../../authz/engine.js';
import { DrawbridgeError } from '../../errors.js';
import type { AgentRuntime } from '../../agent/engine.js';
import { CLIENT_CODES, QueryAuditor, SERVER_CODES } from './audit.js';
import { fatalFor } from './errors.js';
import { BackendCode, FrontendCode } from './messages.js';
import { BACKEND_LIMITS, type MessageCallback, MessageScanner, frontendLimits } from './parser.js';
import { TERMINATE } from './serializer.js';
import { SessionAudit } from './session-audit.js';

/** How long a closing socket may take to flush before it is destroyed. */
const FORCE_CLOSE_MS = 2_000;
/** Byte counters reach Prometheus in steps of this size (and at session end), not per chunk. */
const METRICS_STEP = 1 << 20;
const ignore = () => undefined;
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

export class PostgresSession implements LiveSession {
  readonly id: string;
  readonly identity: Identity;
  private readonly dbUser: string;
  private readonly dbName: string;
  private readonly frontend: MessageScanner;
  private readonly backendFrames = new MessageScanner(BACKEND_LIMITS, SERVER_CODES);
  private readonly events: SessionAudit;
  private readonly auditor = new QueryAuditor(
    (fields) => this.events.query(fields),
    () => this.agent.state.database.spec.audit.maxValueLength,
    (info, statement, parameters) => this.events.bind(info, statement, parameters),
    (query) => this.events.text(query),
    (body, length) => this.events.plain(body, length),
    (info, statement, values) => this.events.bindPlain(info, statement, values),
  );
  private readonly client: TLSSocket;
  private readonly backend: Socket;
  private readonly onEnd: () => void;
  /** What `start` needs once; dropped then, so an idle session holds no startup bytes. */
  private startup: Pick<SessionParams, 'clientRest' | 'backendRest' | 'startFields'> | undefined;
  private readonly startedAt = Date.now();
  private fromClient = 0;
  private toClient = 0;
  private counted = { fromClient: 0, toClient: 0 };
  /** Set once the session is ending; `fatal` is still to be sent when the backend reaches a boundary. */
  private ending: { reason: string; fatal?: Buffer } | undefined;
  private finished = false;
  /** The client sent Terminate: whichever socket closes first, the client ended the session. */
  private clientTerminated = false;
  private auditHold: AuditHold | undefined;
  /** A client chunk failed to scan and was not relayed: the backend may be inside a message. */
  private frontendCut = false;
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
    this.events = new SessionAudit(agent, p.id, p.identity.user, p.dbUser, p.dbName);
    this.frontend = new MessageScanner(frontendLimits(agent.limits.maxRequestBytes), CLIENT_CODES);
    this.roundTrips = agent.metrics.commandDuration.seriesFor('postgres');
  }

  request(): AccessRequest {
    return { database: this.agent.state.database, dbUser: this.dbUser, dbName: this.dbName };
  }

  start(): void {
    const { clientRest, backendRest, startFields } = this.startup!;
    this.startup = undefined;
    readDirect(this.client, this.relayToBackend);
    readDirect(this.backend, this.relayToClient);
    this.client.once('close', () => this.closed('client disconnected'));
    this.backend.once('close', () => this.closed('the database closed the connection'));
    if (!this.events.emit('session.start', startFields)) return this.terminate(auditOverflow());
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
      // The chunk is not relayed: the server may hold the head of the message that failed.
      if (scanner === this.frontend) this.frontendCut = true;
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
    // Backpressure still: a client that stops reading inside a 1 GB row would have the agent hold the
    // rest of it until the force close.
    if (n > 0) this.forward(this.backend, this.client, chunk.subarray(0, n));
    if (this.backendFrames.atBoundary) this.closeWith(fatal);
  }

  private fail(err: unknown): void {
    const fields = { sessionId: this.id, err: (err as Error).message };
    // The session starts after the login (frontend.ts): every limit here is a logged-in client's.
    const limit = err instanceof DrawbridgeError ? limitOf(err.code, true) : undefined;
    if (limit) this.agent.limitExceeded(limit, fields);
    else this.agent.clientLog.info(fields, 'postgres session protocol error');
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

  /**
   * A clean Terminate when the backend is between client messages; otherwise a plain disconnect: a
   * Terminate after a message's relayed head would complete it with the Terminate's bytes, and the
   * server would run a statement no one audited (`…AS ab` missing its `ab` runs as `…AS X`).
   */
  private closeBackend(): void {
    if (!this.frontendCut && this.frontend.atBoundary && this.backend.writable) this.backend.end(TERMINATE);
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
    this.events.emit('session.end', {
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
}
