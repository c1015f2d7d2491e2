// Audit events as JSON lines, one per line, to a file or stdout, encoded straight into batches that
// AuditFile writes in order. What happens when the sink cannot keep up is a choice (the Database's
// spec.audit.mode, defaulting to the agent's):
//   required (default)  the sink failing, or more than its bound behind, holds the sessions: they stop
//                       reading client input (`held`, `whenWritable`) until it catches up, and end with
//                       AUDIT_UNAVAILABLE if that lasts past the stall timeout. No event is dropped
//                       unless twice the bound is waiting (sessions already held): that is counted, and
//                       emit's `false` ends the session instead of running what was not recorded.
//   best-effort         sessions go on; events past the bound are dropped and counted.
// Either way memory stays bounded, every write error is logged and counted, and nothing is silent.
import type { AuditMode } from '../api/database.js';
import { DrawbridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { AuditFile } from './audit-file.js';
import { auditJson } from './audit-value.js';

export { auditJson, auditValue, cutMark } from './audit-value.js';

export type AuditEventType =
  | 'session.start'
  | 'session.end'
  | 'session.denied'
  | 'query'
  | 'command'
  | 'command.denied'
  | 'token.refused';

export interface AuditEvent {
  type: AuditEventType;
  sessionId: string;
  database: string;
  protocol: string;
  user: string;
  dbUser?: string;
  dbName?: string;
  [field: string]: unknown;
}

/** Writes one event's JSON, after its opening `{"time":"…"`, straight into the audit batch. */
export interface AuditEventWriter {
  /** Writes `,"type":…}` at `at` (at most the `maxBytes` it was given room for); returns where it ends. */
  writeAuditEvent(buf: Buffer, at: number): number;
  /**
   * Instead of writeAuditEvent, when the writer has it: the whole event, `clock.time` first. A writer
   * keeping a copy of those bytes joined to its own head copies one run per event instead of two.
   */
  writeAuditLine?(buf: Buffer, at: number, clock: AuditClock): number;
}

/**
 * The sink's clock: `time` is `{"time":"…"` of the millisecond `ms` (the same bytes for the same `ms`).
 * An object read in place, so that a writer compares `ms` without a number boxed per call.
 */
export interface AuditClock {
  readonly time: Buffer;
  readonly ms: number;
}

export interface AuditGuarantee {
  mode: AuditMode;
  /** Required mode: how long sessions wait for a stuck sink before they are ended. */
  stallTimeoutMs: number;
}

/** What the metrics report (drawbridge_audit_*). */
export interface AuditStats {
  readonly dropped: number;
  readonly writeErrors: number;
  readonly pendingBytes: number;
  readonly held: boolean;
}

export interface AuditSink {
  /** `false`: required mode dropped the event; what it records must not run (auditOverflow). */
  emit(event: AuditEvent): boolean | void;
  /**
   * The fast path for events written per command or statement (both engines): the same, serialized
   * by `writer` straight into the sink's own buffer. `now`: the event's time (Date.now()) when the
   * caller has it already, e.g. one clock read for all the commands of one socket read.
   */
  emitWith?(maxBytes: number, writer: AuditEventWriter, now?: number): boolean | void;
  /** Required mode, sink failing or behind: sessions must not read more client input for now. */
  readonly held?: boolean;
  /** Calls `resume()` once the sink takes events again, or `resume(err)` when the stall lasted too long. */
  whenWritable?(resume: (err?: DrawbridgeError) => void): void;
  /** Applies a Database's own mode / stall timeout over the agent's defaults (each reload). */
  configure?(override: Partial<AuditGuarantee>): void;
  readonly stats?: AuditStats;
  close(): Promise<void>;
}

export interface AuditOptions extends AuditGuarantee {
  /** Bytes waiting to be written past which the sink is behind (default 8 MiB). */
  bufferBytes?: number;
  /** How soon a failed write is tried again (default 1 s). */
  retryMs?: number;
  /** At shutdown, how long the last events get to reach the log (default 5 s). */
  closeTimeoutMs?: number;
  /** Write to this open descriptor instead of opening `path` (an agent worker's audit pipe). */
  fd?: number;
}

export const DEFAULT_AUDIT: AuditOptions = { mode: 'required', stallTimeoutMs: 30_000, bufferBytes: 8 << 20 };

const FLUSH_MS = 5;
// A batch is written at FLUSH_BYTES (FILE_FLUSH_BYTES to a local file: fewer write(2)s, each with a
// fixed cost beside the page cache's per byte) or FLUSH_MS after its first line; LINE_ROOM more fit.
const FLUSH_BYTES = 64 * 1024;
const FILE_FLUSH_BYTES = 256 * 1024;
const LINE_ROOM = 16 * 1024;
/** UTF-8 takes at most 3 bytes per UTF-16 unit: a string of n units surely fits in 3n bytes. */
export const MAX_BYTES_PER_UNIT = 3;
/** While the sink keeps failing, the error is logged again this often (each retry is counted). */
const RELOG_MS = 30_000;

export class JsonLinesAudit implements AuditSink, AuditStats {
  held = false;
  dropped = 0;
  writeErrors = 0;
  private readonly file: AuditFile;
  private readonly defaults: AuditGuarantee;
  private guarantee: AuditGuarantee;
  private readonly bufferBytes: number;
  private readonly closeTimeoutMs: number;
  /** New events are dropped (and counted): best-effort past the bound, required past twice it. */
  private refusing = false;
  private failure: { err: NodeJS.ErrnoException; since: number; loggedAt: number } | undefined;
  private droppedLogged = 0;
  private waiters: ((err?: DrawbridgeError) => void)[] = [];
  private stallTimer: NodeJS.Timeout | undefined;
  private stalled: DrawbridgeError | undefined;

  // Lines are encoded straight into a batch buffer (the file keeps a batch until it is written, then
  // the next batch takes it): no long string built per batch, no buffer allocated each. Its flush
  // size is FILE_FLUSH_BYTES once the sink is known to be a local file.
  private batch: Buffer | undefined;
  private spare: Buffer | undefined;
  private used = 0;
  private flushBytes = FLUSH_BYTES;
  // One timer object, re-armed with refresh() (no Timeout allocated and cleared per batch): armed
  // whenever a line is waiting and none is armed. A batch flushed by size leaves it armed: it then
  // flushes the next batch early, which still writes every line within FLUSH_MS.
  private flushTimer: NodeJS.Timeout | undefined;
  private flushArmed = false;
  /** `{"time":"…"` of the current millisecond, as bytes: copied into the batch, not encoded per line. */
  private readonly clock: { time: Buffer; ms: number } = { time: Buffer.alloc(0), ms: 0 };

  constructor(
    private readonly path: string,
    private readonly log: Logger,
    opts: AuditOptions = DEFAULT_AUDIT,
  ) {
    this.defaults = { mode: opts.mode, stallTimeoutMs: opts.stallTimeoutMs };
    this.guarantee = this.defaults;
    this.bufferBytes = opts.bufferBytes ?? DEFAULT_AUDIT.bufferBytes!;
    this.closeTimeoutMs = opts.closeTimeoutMs ?? 5_000;
    this.file = new AuditFile(
      path,
      { failed: (err) => this.failed(err), written: (done) => this.written(done) },
      opts.retryMs ?? 1000,
      opts.fd,
    );
  }

  get stats(): AuditStats {
    return this;
  }

  get pendingBytes(): number {
    return this.file.queued + this.used;
  }

  configure(override: Partial<AuditGuarantee>): void {
    this.guarantee = {
      mode: override.mode ?? this.defaults.mode,
      stallTimeoutMs: override.stallTimeoutMs ?? this.defaults.stallTimeoutMs,
    };
    this.update();
  }

  emit(event: AuditEvent): boolean {
    if (this.refusing) return this.drop();
    // `time` first, without copying the event: the prefix, then the event with its `{` made a `,`.
    const json = auditJson(event);
    const batch = this.begin(json.length * MAX_BYTES_PER_UNIT, Date.now());
    return this.end(writeJsonFields(batch, this.used, json));
  }

  emitWith(maxBytes: number, writer: AuditEventWriter, now = Date.now()): boolean {
    if (this.refusing) return this.drop();
    if (!writer.writeAuditLine) {
      const batch = this.begin(maxBytes, now);
      return this.end(writer.writeAuditEvent(batch, this.used));
    }
    const batch = this.begin(maxBytes, now, false);
    return this.end(writer.writeAuditLine(batch, this.used, this.clock));
  }

  whenWritable(resume: (err?: DrawbridgeError) => void): void {
    if (!this.held) process.nextTick(resume);
    else if (this.stalled) process.nextTick(resume, this.stalled);
    else this.waiters.push(resume);
  }

  /**
   * A batch with room for the time prefix (of `now`) and `maxBytes` more, the prefix written at `used`
   * (unless `withTime` is false: the writer writes it).
   */
  private begin(maxBytes: number, now: number, withTime = true): Buffer {
    const clock = this.clock;
    if (now !== clock.ms) this.setClock(now);
    const room = clock.time.length + maxBytes + 1;
    if (this.batch && this.used + room > this.batch.length) this.flush();
    const batch = (this.batch ??= this.newBatch(room));
    if (!withTime) return batch;
    batch.set(clock.time, this.used);
    this.used += clock.time.length;
    return batch;
  }

  /** The time prefix of `now`: within the second it has, only its milliseconds (before `Z"`) change. */
  private setClock(now: number): void {
    const clock = this.clock;
    const p = clock.time;
    if (p.length > 0 && Math.floor(now / 1000) === Math.floor(clock.ms / 1000)) {
      const ms = now % 1000;
      p[p.length - 5] = 0x30 + Math.floor(ms / 100);
      p[p.length - 4] = 0x30 + (Math.floor(ms / 10) % 10);
      p[p.length - 3] = 0x30 + (ms % 10);
    } else {
      clock.time = Buffer.from(`{"time":"${new Date(now).toISOString()}"`, 'latin1');
    }
    clock.ms = now;
  }

  private newBatch(room: number): Buffer {
    const spare = this.spare;
    const size = this.flushBytes + LINE_ROOM;
    if (spare === undefined || room > size) return Buffer.allocUnsafe(Math.max(size, room));
    this.spare = undefined;
    return spare;
  }

  /** Ends the line written up to `at`: it is queued. */
  private end(at: number): true {
    this.batch![at] = 0x0a;
    this.used = at + 1;
    if (this.used >= this.flushBytes) this.flush();
    else if (!this.flushArmed) this.armFlush();
    return true;
  }

  private armFlush(): void {
    this.flushArmed = true;
    if (this.flushTimer) this.flushTimer.refresh();
    else this.flushTimer = setTimeout(this.flushNow, FLUSH_MS);
  }

  private readonly flushNow = (): void => {
    this.flushArmed = false;
    this.flush();
  };

  private flush(): void {
    const batch = this.batch;
    if (!batch || this.used === 0) return;
    const used = this.used;
    this.batch = undefined;
    this.used = 0;
    this.file.push(batch.subarray(0, used));
    this.update();
  }

  /** Re-derives `refusing` and `held` from what is waiting; called per batch and per write, not per event. */
  private update(): void {
    const queued = this.file.queued;
    const required = this.guarantee.mode === 'required';
    this.refusing = queued >= (required ? 2 : 1) * this.bufferBytes;
    // Held from the bound up, released below half of it: no flapping at the edge.
    const behind =
      this.failure !== undefined || queued > (this.held ? this.bufferBytes / 2 : this.bufferBytes);
    this.setHeld(required && behind);
  }

  private setHeld(held: boolean): void {
    if (held === this.held) return;
    this.held = held;
    if (held) {
      this.log.warn(
        { path: this.path, pendingBytes: this.pendingBytes, stallTimeoutMs: this.guarantee.stallTimeoutMs },
        'audit log behind: sessions wait for it (audit mode required)',
      );
      this.stallTimer = setTimeout(() => this.stall(), this.guarantee.stallTimeoutMs);
      return;
    }
    clearTimeout(this.stallTimer);
    this.stalled = undefined;
    this.log.info({ path: this.path }, 'audit log caught up: sessions resume');
    const waiters = this.waiters;
    this.waiters = [];
    for (const resume of waiters) resume();
  }

  /** Held past the stall timeout: waiting sessions end, and so does each one that tries meanwhile. */
  private stall(): void {
    const why = this.failure
      ? `${this.failure.err.code ?? this.failure.err.message}`
      : 'writes are not keeping up';
    this.stalled = new DrawbridgeError(
      'AUDIT_UNAVAILABLE',
      `the audit log has taken no events for ${Math.round(this.guarantee.stallTimeoutMs / 1000)}s (${why}); the session ends because its commands could not be audited`,
      "reconnect later; an admin should check the agent's audit log destination (disk space, log pipeline)",
    );
    this.log.error(
      { path: this.path, sessions: this.waiters.length, reason: why },
      'audit log stalled: ending the sessions waiting for it',
    );
    const waiters = this.waiters;
    this.waiters = [];
    for (const resume of waiters) resume(this.stalled);
  }

  private drop(): boolean {
    this.dropped++;
    if (this.droppedLogged === 0 || Date.now() - this.droppedLogged > RELOG_MS) {
      this.droppedLogged = Date.now();
      this.log.error(
        {
          path: this.path,
          mode: this.guarantee.mode,
          pendingBytes: this.pendingBytes,
          dropped: this.dropped,
        },
        'audit events dropped: the audit log is not keeping up (drawbridge_audit_events_dropped_total)',
      );
    }
    return this.guarantee.mode !== 'required';
  }

  private failed(err: NodeJS.ErrnoException): void {
    this.writeErrors++;
    const now = Date.now();
    const failure = (this.failure ??= { err, since: now, loggedAt: 0 });
    failure.err = err;
    if (now - failure.loggedAt > RELOG_MS) {
      failure.loggedAt = now;
      this.log.error(
        { path: this.path, err: err.message, code: err.code, pendingBytes: this.pendingBytes },
        'audit log write failed; retrying the same bytes (drawbridge_audit_write_errors_total)',
      );
    }
    this.update();
  }

  private written(done: Buffer | undefined): void {
    this.flushBytes = this.file.regular ? FILE_FLUSH_BYTES : FLUSH_BYTES;
    // A batch of the usual size is whole from offset 0 of its own memory (allocUnsafe beyond the pool).
    const size = this.flushBytes + LINE_ROOM;
    if (done?.byteOffset === 0 && done.buffer.byteLength === size) {
      this.spare = Buffer.from(done.buffer, 0, size);
    }
    if (this.failure) {
      this.log.info(
        { path: this.path, failedForMs: Date.now() - this.failure.since, dropped: this.dropped },
        'audit log writable again',
      );
      this.failure = undefined;
    }
    this.update();
  }

  async close(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushArmed = false;
    this.flush();
    clearTimeout(this.stallTimer);
    const left = await this.file.close(this.closeTimeoutMs);
    if (left > 0) {
      this.log.error(
        { path: this.path, bytes: left },
        'audit events not written before shutdown: the audit log did not take them',
      );
    }
  }
}

/**
 * Writes the fields of the JSON object `json` at `at` as the continuation of an event (its `{` made
 * a `,`); returns where they end. Room needed: json.length * MAX_BYTES_PER_UNIT.
 */
export function writeJsonFields(buf: Buffer, at: number, json: string): number {
  const end = at + buf.write(json, at, 'utf8');
  buf[at] = 0x2c; // ,
  return end;
}
