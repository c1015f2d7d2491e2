// A Redis session's audit events. The per-command event is on the hot path: it is serialized straight
// into the audit batch from the session's fields (encoded once per login) and the command's own bytes.
import type { AuditEvent, AuditEventType, AuditEventWriter } from '../../agent/audit.js';
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
 * `"get","args":` per command name, shared by every session: a workload mixing commands would
 * otherwise encode a name on every change. Relayed commands are the backend's (the catalog bounds
 * them); the bound is there all the same.
 */
const NAME_JSON = new Map<string, Buffer>();
const MAX_NAMES = 4096;

function nameJson(name: string): Buffer {
  let json = NAME_JSON.get(name);
  if (json === undefined) {
    if (NAME_JSON.size >= MAX_NAMES) NAME_JSON.clear();
    json = Buffer.from(`${JSON.stringify(name)},"args":`);
    NAME_JSON.set(name, json);
  }
  return json;
}

export class SessionAudit implements AuditEventWriter {
  // command()'s session fields as JSON bytes, and the command it is writing now (its name's JSON and
  // the value limit its room was sized for).
  private commandEvent: { user: string; dbUser?: string; database: string; prefix: Buffer } | undefined;
  private commandNameJson: Buffer = EMPTY;
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

  /** The per-command event, written for every command relayed. */
  command(cmd: RedisCommand): void {
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
      const fields = JSON.stringify(this.event('command'));
      const prefix = Buffer.from(`,${fields.slice(1, -1)},"command":`);
      e = this.commandEvent = { user, dbUser, database, prefix };
    }
    this.commandNameJson = nameJson(cmd.name);
    this.audited = cmd;
    this.auditedMax = max;
    audit.emitWith(e.prefix.length + this.commandNameJson.length + room + 1, this, this.readAt || Date.now());
    this.audited = undefined;
  }

  writeAuditEvent(buf: Buffer, at: number): number {
    buf.set(this.commandEvent!.prefix, at);
    at += this.commandEvent!.prefix.length;
    buf.set(this.commandNameJson, at);
    at = writeArgsJson(buf, at + this.commandNameJson.length, this.audited!, this.auditedMax);
    buf[at] = 0x7d; // }
    return at + 1;
  }

  emit(type: AuditEventType, fields: Record<string, unknown>): void {
    this.s.agent.audit.emit(Object.assign(this.event(type), fields));
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
