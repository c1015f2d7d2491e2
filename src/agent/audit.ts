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

export interface AuditSink {
  emit(event: AuditEvent): void;
  /** The same, already serialized as one JSON object (`{"type":…}`): for events written per command. */
  emitJson?(json: string): void;
  close(): Promise<void>;
}

const FLUSH_MS = 5;
const FLUSH_BYTES = 64 * 1024;

export class JsonLinesAudit implements AuditSink {
  private stream: WriteStream | NodeJS.WritableStream | undefined;

  constructor(
    private readonly path: string,
    private readonly log: Logger,
  ) {}

  private pending = '';
  private flushTimer: NodeJS.Timeout | undefined;
  private clockMs = 0;
  private clockIso = '';

  emit(event: AuditEvent): void {
    this.emitJson(JSON.stringify(event));
  }

  emitJson(json: string): void {
    const now = Date.now();
    if (now !== this.clockMs) {
      this.clockMs = now;
      this.clockIso = new Date(now).toISOString();
    }
    // `time` first, without copying the event. Events are written in batches (every few ms, or at
    // 64 KB) so a busy relay makes a few file writes per second, not one per command.
    this.pending += `{"time":"${this.clockIso}",${json.slice(1)}\n`;
    if (this.pending.length >= FLUSH_BYTES) this.flush();
    else if (!this.flushTimer) this.flushTimer = setTimeout(this.flush, FLUSH_MS);
  }

  private readonly flush = (): void => {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const text = this.pending;
    this.pending = '';
    if (text) this.open().write(text);
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

/** Long values are cut, with their length and a hash, so audit logs stay readable and comparable. */
export function auditValue(value: string | Buffer, max = 256): string {
  if (value.length <= max) return typeof value === 'string' ? value : value.toString('utf8');
  const hash = createHash('sha256').update(value).digest('hex').slice(0, 16);
  const head = typeof value === 'string' ? value.slice(0, max) : value.subarray(0, max).toString('utf8');
  return `${head}…[${value.length} bytes sha256:${hash}]`;
}
