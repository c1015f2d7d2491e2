// Audit events as JSON lines, one per line, to a file or stdout. Writes are buffered by the stream;
// an event is never dropped silently: a write error is logged and the sink reopens on the next event.
import { createWriteStream, type WriteStream } from 'node:fs';
import { createHash } from 'node:crypto';
import type { Logger } from '../log.js';

export type AuditEventType =
  'session.start' | 'session.end' | 'session.denied' | 'query' | 'command' | 'command.denied';

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
}

export interface AuditSink {
  emit(event: AuditEvent): void;
  /** The same, already serialized as one JSON object (`{"type":…}`): for events written per query. */
  emitJson?(json: string): void;
  /** The same, serialized by `writer` into the sink's own buffer: for events written per command. */
  emitWith?(maxBytes: number, writer: AuditEventWriter): void;
  close(): Promise<void>;
}

const FLUSH_MS = 5;
const FLUSH_BYTES = 64 * 1024;
/** Room for a full batch plus the line that crosses FLUSH_BYTES. */
const BATCH_BYTES = FLUSH_BYTES + 16 * 1024;
/** UTF-8 takes at most 3 bytes per UTF-16 unit: a line of n units surely fits in 3n bytes. */
const MAX_BYTES_PER_UNIT = 3;

export class JsonLinesAudit implements AuditSink {
  private stream: WriteStream | NodeJS.WritableStream | undefined;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
  ) {}

  // Lines are encoded straight into a batch buffer (a new one per batch: the stream keeps the last
  // until it is written), so a busy relay neither builds nor re-encodes one long string per batch.
  private batch: Buffer | undefined;
  private used = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private clockMs = 0;
  private timePrefix = '';

  emit(event: AuditEvent): void {
    this.emitJson(JSON.stringify(event));
  }

  emitJson(json: string): void {
    // `time` first, without copying the event: the prefix, then the event with its `{` made a `,`.
    const batch = this.begin(json.length * MAX_BYTES_PER_UNIT);
    const at = this.used;
    const written = batch.write(json, at, 'utf8');
    batch[at] = 0x2c; // ,
    this.end(at + written);
  }

  emitWith(maxBytes: number, writer: AuditEventWriter): void {
    const batch = this.begin(maxBytes);
    this.end(writer.writeAuditEvent(batch, this.used));
  }

  /** A batch with room for the time prefix and `maxBytes` more, the prefix written at `used`. */
  private begin(maxBytes: number): Buffer {
    const now = Date.now();
    if (now !== this.clockMs) {
      this.clockMs = now;
      this.timePrefix = `{"time":"${new Date(now).toISOString()}"`;
    }
    const room = this.timePrefix.length + maxBytes + 1;
    if (this.batch && this.used + room > this.batch.length) this.flush();
    const batch = (this.batch ??= Buffer.allocUnsafe(Math.max(BATCH_BYTES, room)));
    this.used += batch.write(this.timePrefix, this.used, 'latin1');
    return batch;
  }

  /** Ends the line written up to `at`. */
  private end(at: number): void {
    this.batch![at] = 0x0a;
    this.used = at + 1;
    if (this.used >= FLUSH_BYTES) this.flush();
    else if (!this.flushTimer) this.flushTimer = setTimeout(this.flush, FLUSH_MS);
  }

  private readonly flush = (): void => {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const batch = this.batch;
    if (!batch || this.used === 0) return;
    const used = this.used;
    this.batch = undefined;
    this.used = 0;
    this.open().write(batch.subarray(0, used));
  };

  private open(): NodeJS.WritableStream {
    if (this.stream) return this.stream;
    if (this.path === '-') return (this.stream = process.stdout);
    const s = createWriteStream(this.path, { flags: 'a', mode: 0o600 });
    s.on('error', (err) => {
      this.log.error({ err, path: this.path }, 'audit log write failed; reopening on next event');
      this.stream = undefined;
    });
    return (this.stream = s);
  }

  async close(): Promise<void> {
    this.flush();
    const s = this.stream;
    this.stream = undefined;
    if (!s || s === process.stdout) return;
    await new Promise<void>((resolve) => (s as WriteStream).end(resolve));
  }
}

/**
 * Long values are cut, with their size in bytes and the SHA-256 of the whole value (hex), so audit logs
 * stay readable and a value can still be matched against a known text.
 */
export function auditValue(value: string | Buffer, max = 256): string {
  if (value.length <= max) return typeof value === 'string' ? value : value.toString('utf8');
  const hash = createHash('sha256').update(value).digest('hex');
  const head = typeof value === 'string' ? value.slice(0, max) : value.subarray(0, max).toString('utf8');
  const bytes = typeof value === 'string' ? Buffer.byteLength(value) : value.length;
  return `${head}…[${bytes} bytes sha256:${hash}]`;
}
