// Where audit batches go: a file opened for append, or stdout ("-"), written with fs.write one batch at
// a time so every byte is accounted for. A short write continues from the byte it stopped at; a failed
// write (disk full, a read-only or vanished file system, a closed pipe) is retried from that same byte
// after reopening the file, so recovering loses nothing and writes nothing twice. The queued byte count
// is how far behind the sink is: JsonLinesAudit decides from it whether sessions must wait.
// A regular file is written with writeSync in the event loop's thread: a write into the page cache is a
// memcpy, while fs.write's threadpool round trip (wake a thread, wake the loop, run the callback) cost
// more than the write itself, once per 5 ms flush (~1 µs per pgbench -S transaction, ~0.5 µs per Redis
// -P16 SET on the 2-core bench). Pipes, FIFOs, devices and files on a network or FUSE file system stay
// on fs.write: they may block (a log pipeline that stops reading, a hard NFS mount whose server is
// gone), and the loop must go on holding or ending sessions meanwhile.
import { close, fstatSync, open, statfsSync, write, writeSync } from 'node:fs';

export interface AuditFileEvents {
  /** An open or write failed; the same bytes are tried again after the retry interval. */
  failed(err: NodeJS.ErrnoException): void;
  /**
   * Bytes reached the file (the first success after a failure means it recovered); `done`: a buffer
   * pushed is now wholly written and no longer held here.
   */
  written(done?: Buffer): void;
}

/** A non-blocking stdout pipe whose reader is slow answers EAGAIN: wait a little, it is not a failure. */
const BUSY_RETRY_MS = 10;
const noop = () => undefined;

export class AuditFile {
  /** Bytes handed over and not yet written. */
  queued = 0;
  private readonly queue: Buffer[] = [];
  /** How much of queue[0] is already written. */
  private offset = 0;
  private fd: number | undefined;
  /** An open or a write is in flight (one at a time keeps the bytes in order). */
  private busy = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private onDrained: (() => void) | undefined;
  private closed = false;
  /** The open file is a regular one on a local disk: written synchronously (see the top of this file). */
  private regular = false;

  /** Writes to a descriptor already open (stdout, an agent worker's audit pipe): never closed or reopened. */
  private readonly given: number | undefined;

  constructor(
    private readonly path: string,
    private readonly events: AuditFileEvents,
    private readonly retryMs: number,
    fd?: number,
  ) {
    this.given = fd ?? (path === '-' ? 1 : undefined);
    this.fd = this.given;
  }

  push(bytes: Buffer): void {
    this.queue.push(bytes);
    this.queued += bytes.length;
    this.pump();
  }

  private pump(): void {
    if (this.busy || this.retryTimer || this.closed) return;
    if (this.queue.length === 0) return this.onDrained?.();
    this.busy = true;
    if (this.fd === undefined) return open(this.path, 'a', 0o600, this.opened);
    const head = this.queue[0]!;
    const length = head.length - this.offset;
    if (!this.regular) return write(this.fd, head, this.offset, length, null, this.wrote);
    let n: number;
    try {
      n = writeSync(this.fd, head, this.offset, length);
    } catch (err) {
      return this.wrote(err as NodeJS.ErrnoException, 0);
    }
    this.wrote(null, n);
  }

  private readonly opened = (err: NodeJS.ErrnoException | null, fd: number): void => {
    this.busy = false;
    if (err) return this.fail(err);
    this.fd = fd;
    this.regular = isLocalFile(fd, this.path);
    this.pump();
  };

  private readonly wrote = (err: NodeJS.ErrnoException | null, n: number): void => {
    this.busy = false;
    if (err) return err.code === 'EAGAIN' ? this.retryIn(BUSY_RETRY_MS) : this.fail(err);
    this.queued -= n;
    this.offset += n;
    let done: Buffer | undefined;
    if (this.offset === this.queue[0]!.length) {
      done = this.queue.shift();
      this.offset = 0;
    }
    this.events.written(done);
    this.pump();
  };

  private fail(err: NodeJS.ErrnoException): void {
    // Reopen next time: the file may have been rotated, remounted or recreated meanwhile.
    if (this.fd !== undefined && this.given === undefined) {
      close(this.fd, noop);
      this.fd = undefined;
    }
    this.events.failed(err);
    this.retryIn(this.retryMs);
  }

  private retryIn(ms: number): void {
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.pump();
    }, ms);
  }

  /**
   * Waits until everything queued is written, at most `timeoutMs` (a sink that stays stuck must not
   * hold the agent's shutdown forever), then closes the file. Resolves to the bytes left unwritten.
   */
  async close(timeoutMs: number): Promise<number> {
    if (this.queue.length > 0 || this.busy) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs);
        this.onDrained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.onDrained = undefined;
    this.closed = true;
    clearTimeout(this.retryTimer);
    // A write still in flight (a blocked pipe) keeps its fd: closing it under the write is unsafe.
    if (this.fd !== undefined && this.given === undefined && !this.busy) close(this.fd, noop);
    this.fd = undefined;
    return this.queued;
  }
}

/**
 * statfs f_type of the file systems whose writes land in the page cache without waiting on anything but
 * the local disk: ext2/3/4, XFS, Btrfs, tmpfs, overlayfs (a container's writable layer), ZFS, F2FS.
 */
const LOCAL_FILE_SYSTEMS = new Set([
  0xef53, 0x58465342, 0x9123683e, 0x01021994, 0x794c7630, 0x2fc12fc1, 0xf2f52010,
]);

/** Whether `fd` (opened from `path`) is a regular file on a local file system: safe to write in the loop. */
export function isLocalFile(fd: number, path: string): boolean {
  try {
    return fstatSync(fd).isFile() && LOCAL_FILE_SYSTEMS.has(statfsSync(path).type);
  } catch {
    return false; // not known to be local: the threadpool write is always safe
  }
}
