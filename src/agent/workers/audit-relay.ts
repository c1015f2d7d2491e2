// One audit log for all of an agent's workers, in one of two ways:
// - A regular file: each worker appends its own batches (O_APPEND), as a single agent would. On Linux a
//   write to a regular file holds the file's lock from finding its end to the last byte, so batches
//   of whole lines never interleave, and the primary has nothing to do per batch. Only a short write
//   (a full disk) can leave a line's head with its tail written after another worker's batch.
// - Anything else (stdout "-", a FIFO, a device): each worker encodes its events into a pipe to the
//   primary (AUDIT_FD), which appends them to the log in whole lines: workers writing stdout themselves
//   could interleave partial lines (a pipe write over 4 KiB is not atomic). When the log falls behind,
//   the primary stops reading the pipes: a worker's own queue then grows and its audit mode (required:
//   sessions wait; best-effort: drop) decides, as it would writing the log directly. Failed writes are
//   retried from the same byte by AuditFile.
// A session lives on one worker, so its events stay in order either way. The primary writes lines of
// its own too: the session.end of each session a dead worker held, after that worker's last line.
// With the audit log on stdout, the workers' stdout (their log lines) comes through a pipe to the
// primary as well and is written alike, in whole lines: the primary is then stdout's only writer, so a
// log line never lands inside an audit line the pipe took only half of when it was full.
import { statSync } from 'node:fs';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../../log.js';
import { AuditFile } from '../audit-file.js';
import type { AuditStats } from '../audit.js';
import { LineBatches, PipeLines } from './pipe-lines.js';
import type { SessionFields } from './protocol.js';

/** While the log keeps failing, the error is logged again this often (each retry is counted). */
const RELOG_MS = 30_000;

export class AuditRelay implements AuditStats {
  writeErrors = 0;
  /** Sessions wait in their workers, whose own sinks report it. */
  readonly held = false;
  /** Incomplete lines of workers that died mid-write: dropped, never written half. */
  dropped = 0;
  /** Workers append to the log themselves (a regular file): no pipes. */
  readonly direct: boolean;
  /** The log is stdout: the workers' stdout comes through the primary too (attach, `logs`). */
  readonly stdout: boolean;
  private readonly file: AuditFile;
  private readonly pipes = new Map<Readable, PipeLines>();
  private readonly batches = new LineBatches();
  /** Lines to write once a dead worker's pipe has given its last bytes. */
  private readonly afterPipe = new Map<Readable, Buffer>();
  private paused = false;
  private loggedAt = 0;

  constructor(
    private readonly path: string,
    /** Bytes waiting past which the pipes are no longer read (resumed below half). */
    private readonly bufferBytes: number,
    private readonly log: Logger,
    retryMs = 1_000,
  ) {
    this.direct = isRegularFile(path);
    this.stdout = path === '-';
    this.file = new AuditFile(path, { failed: (err) => this.failed(err), written: this.written }, retryMs);
  }

  get pendingBytes(): number {
    return this.file.queued;
  }

  /** Reads one worker's audit pipe (or, `logs`, its stdout) until it ends (the worker exited). */
  attach(pipe: Readable, worker: number, logs = false): void {
    // Whole lines only, copied out of each read (pipe-lines.ts); this process is the log's only writer.
    const reader = new PipeLines(pipe, this.batches, this.push);
    reader.stream.once('close', () => {
      this.pipes.delete(pipe);
      if (reader.carried > 0 && !logs) {
        this.dropped++;
        const bytes = reader.carried;
        this.log.error({ worker, bytes }, 'audit: an incomplete line of an exited worker dropped');
      }
      const after = this.afterPipe.get(pipe);
      this.afterPipe.delete(pipe);
      if (after) this.file.push(after);
    });
    reader.stream.on('error', (err) => this.log.debug({ worker, err: err.message }, 'audit pipe error'));
    this.pipes.set(pipe, reader);
    if (this.paused) reader.stream.pause();
  }

  /**
   * Writes a session.end (`reason`) for each of `sessions`, those of a worker that died: after the
   * last of its lines (`pipe` closed), so each session's end follows its other events.
   */
  endSessions(pipe: Readable | undefined, sessions: Iterable<SessionFields>, reason: string): void {
    const time = new Date().toISOString();
    let text = '';
    for (const s of sessions) text += JSON.stringify({ time, type: 'session.end', ...s, reason }) + '\n';
    if (text === '') return;
    const lines = Buffer.from(text);
    if (pipe && this.pipes.has(pipe)) this.afterPipe.set(pipe, lines);
    else this.file.push(lines);
  }

  private readonly push = (lines: Buffer): void => {
    this.file.push(lines);
    if (this.paused || this.file.queued <= this.bufferBytes) return;
    this.paused = true;
    for (const reader of this.pipes.values()) reader.stream.pause();
  };

  private readonly written = (done?: Buffer): void => {
    if (done) this.batches.release(done);
    if (this.loggedAt !== 0) {
      this.loggedAt = 0;
      this.log.info({ path: this.path }, 'audit log writable again');
    }
    if (!this.paused || this.file.queued > this.bufferBytes / 2) return;
    this.paused = false;
    for (const reader of this.pipes.values()) reader.stream.resume();
  };

  private failed(err: NodeJS.ErrnoException): void {
    this.writeErrors++;
    if (Date.now() - this.loggedAt < RELOG_MS) return;
    this.loggedAt = Date.now();
    this.log.error(
      { path: this.path, err: err.message, code: err.code, pendingBytes: this.file.queued },
      'audit log write failed; retrying the same bytes (drawbridge_audit_write_errors_total)',
    );
  }

  /**
   * After the workers exited: reads what their pipes still hold (a worker's exit can be seen before its
   * last bytes), writes what is queued, at most `timeoutMs` in all, then closes.
   */
  async close(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.pipes.size > 0 && Date.now() < deadline) await sleep(10);
    const left = await this.file.close(Math.max(0, deadline - Date.now()));
    if (left > 0) {
      this.log.error({ path: this.path, bytes: left }, 'audit events not written before shutdown');
    }
  }
}

/** A regular file, or nothing yet (the workers create one). */
function isRegularFile(path: string): boolean {
  if (path === '-') return false;
  try {
    return statSync(path).isFile();
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOENT';
  }
}
