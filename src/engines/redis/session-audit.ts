// A Redis session's audit events. The per-command event is on the hot path: it is serialized straight
// into the audit batch from the session's fields (encoded once per login) and the command's own bytes.
import {
  type AuditClock,
  type AuditEvent,
  type AuditEventType,
  type AuditEventWriter,
  auditJson,
} from '../../agent/audit.js';
import type { AgentRuntime } from '../../agent/engine.js';
import { argsJsonMaxBytes, auditArgs, writeArgsJson } from './audit.js';
import type { RedisCommand } from './parser.js';
import type { SessionLogin } from './session-login.js';

const EMPTY = Buffer.alloc(0);
/** Past this worst-case size a command's audit event is built as a string, not in the batch buffer. */
const MAX_DIRECT_AUDIT_BYTES = 1 << 20;

/** What the audit reads of its session; `login` is read per event (a login or user switch applies at once). */
interface AuditedSession {
  readonly id: string;
  readonly agent: AgentRuntime;
  readonly login: SessionLogin;
}

/**
 * Command names a session keeps its event heads for: a session runs a handful of commands (relayed
 * ones are the backend's, which the catalog bounds); past this many the heads are made again.
 */
const MAX_HEADS = 64;

/**
 * A command name's event head, `,"type":"command",…,"command":"get","args":`, and (`line`) the same
 * after the sink's `{"time":"…"` of the millisecond `timeMs`: one copy starts a line, and within a
 * millisecond (a pipeline's commands share their read's) the time is not copied again.
 */
class EventHead {
  line: Buffer = EMPTY;
  timeMs = -1;

  constructor(readonly head: Buffer) {}

  /** `line` with the clock's time before the head. */
  at(clock: AuditClock): Buffer {
    const time = clock.time;
    if (this.line.length !== time.length + this.head.length) {
      this.line = Buffer.allocUnsafe(time.length + this.head.length);
      this.line.set(this.head, time.length);
      this.timeMs = -1;
    }
    if (clock.ms !== this.timeMs) {
      this.line.set(time, 0);
      this.timeMs = clock.ms;
    }
    return this.line;
  }
}

export class SessionAudit implements AuditEventWriter {
  // command()'s session fields as JSON bytes, and per command name the event's head up to its
  // arguments, the last one used at hand (a pipeline repeats its command). Then the command being
  // written now, its head and the value limit its room was sized for.
  private commandEvent: { user: string; dbUser?: string; database: string; prefix: Buffer } | undefined;
  private readonly heads = new Map<string, EventHead>();
  private lastName = '';
  private lastHead = new EventHead(EMPTY);
  private auditedHead = this.lastHead;
  private audited: RedisCommand | undefined;
  private auditedMax = 0;
  /**
   * While the session parses a socket read (0 otherwise): when it was read. Its commands arrived
   * together, and their lines take that time instead of reading the clock once per command.
   */
  readAt = 0;

  constructor(private readonly s: AuditedSession) {}

  /** The longest value audited whole, read per event (as PostgreSQL does): a new spec applies at once. */
  get max(): number {
    return this.s.agent.state.database.spec.audit.maxValueLength;
  }

  /** The per-command event, written for every command relayed; false: dropped, it must not run (auditOverflow). */
  command(cmd: RedisCommand): boolean {
    const { user, dbUser } = this.s.login;
    const database = this.s.agent.state.database.metadata.name;
    const max = this.max;
    const audit = this.s.agent.audit;
    const room = argsJsonMaxBytes(cmd, max);
    // Huge commands (an MSET of a million keys) are serialized exactly instead of reserving the worst case.
    if (!audit.emitWith || room > MAX_DIRECT_AUDIT_BYTES) {
      return this.emit('command', { command: cmd.name, args: auditArgs(cmd, max) });
    }
    let e = this.commandEvent;
    if (e === undefined || e.user !== user || e.dbUser !== dbUser || e.database !== database) {
      const fields = auditJson(this.event('command'));
      const prefix = Buffer.from(`,${fields.slice(1, -1)},"command":`);
      e = this.commandEvent = { user, dbUser, database, prefix };
      this.heads.clear();
      this.lastName = '';
    }
    const head = (this.auditedHead =
      cmd.name === this.lastName ? this.lastHead : this.head(cmd.name, e.prefix));
    this.audited = cmd;
    this.auditedMax = max;
    const queued = audit.emitWith(head.head.length + room + 1, this, this.readAt || Date.now());
    this.audited = undefined;
    return queued !== false;
  }

  /** The event's head for command `name` with the session's fields `prefix`. */
  private head(name: string, prefix: Buffer): EventHead {
    let head = this.heads.get(name);
    if (head === undefined) {
      if (this.heads.size >= MAX_HEADS) this.heads.clear();
      head = new EventHead(Buffer.concat([prefix, Buffer.from(`${auditJson(name)},"args":`)]));
      this.heads.set(name, head);
    }
    this.lastName = name;
    this.lastHead = head;
    return head;
  }

  writeAuditEvent(buf: Buffer, at: number): number {
    return this.writeFrom(this.auditedHead.head, buf, at);
  }

  writeAuditLine(buf: Buffer, at: number, clock: AuditClock): number {
    return this.writeFrom(this.auditedHead.at(clock), buf, at);
  }

  /** `start` (the event's head, or time and head), then the command's arguments and the closing `}`. */
  private writeFrom(start: Buffer, buf: Buffer, at: number): number {
    buf.set(start, at);
    at = writeArgsJson(buf, at + start.length, this.audited!, this.auditedMax);
    buf[at] = 0x7d; // }
    return at + 1;
  }

  /** False: required mode dropped it (see AuditSink.emit). */
  emit(type: AuditEventType, fields: Record<string, unknown>): boolean {
    return this.s.agent.audit.emit(Object.assign(this.event(type), fields)) !== false;
  }

  /** The fields every audit event of this session carries. */
  private event(type: AuditEventType): AuditEvent {
    return {
      type,
      sessionId: this.s.id,
      database: this.s.agent.state.database.metadata.name,
      protocol: 'redis',
      user: this.s.login.user,
      dbUser: this.s.login.dbUser,
    };
  }
}
