// Where audit batches go: a file opened for append, or stdout ("-"), written one batch at a time so
// every byte is accounted for. A short write continues from the byte it stopped at; a failed write
// (disk full, a read-only or vanished file system, a closed pipe) is retried from that same byte after
// reopening the file, so recovering loses nothing and writes nothing twice. The queued byte count is
// how far behind the sink is: JsonLinesAudit decides from it whether sessions must wait.
// How a batch is written depends on what the descriptor is, so that none can freeze the event loop:
// - A regular file on a local file system: writeSync in the event loop's thread. A write into the page
//   cache is a memcpy, while fs.write's threadpool round trip (wake a thread, wake the loop, run the
//   callback) cost more than the write itself (~1 µs per pgbench -S transaction, ~0.5 µs per Redis
//   -P16 SET on the 2-core bench).
// - A pipe or a socket (stdout in a container, a FIFO, a worker's pipe to its primary): a libuv stream
//   on the descriptor (process.stdout for fd 1), written in the loop without blocking: one write(2)
//   per batch while the reader keeps up; when the pipe is full (a reader that stopped) libuv waits for
//   it to be writable and the batch stays queued, so the audit mode holds or drops as for any sink
//   that falls behind. The descriptor is non-blocking — for stdout it already was: Node's
//   process.stdout, which pino reads at start, sets that on the open file description it shares with
//   pino's own writes (sonic-boom: EAGAIN is retried every 100 ms, its lines kept meanwhile).
// - Anything else (a device, a file on NFS, CIFS or FUSE, a TTY): fs.write on the threadpool, which may
//   block (a hard mount whose server is gone) while the loop goes on holding or ending sessions.
import { close, fstatSync, open, statfsSync, write, writeSync } from 'node:fs';
import { Socket } from 'node:net';

export interface AuditFileEvents {
  /** An open or write failed; the same bytes are tried again after the retry interval. */
  failed(err: NodeJS.ErrnoException): void;
  /**
   * Bytes reached the file (the first success after a failure means it recovered); `done`: a buffer
   * pushed is now wholly written and no longer held here.
   */
  written(done?: Buffer): void;
}

/** A non-blocking descriptor on the threadpool path answers EAGAIN when full: wait a little, it is not a failure. */
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
  regular = false;
  /** The open descriptor is a pipe or a socket: written through this stream (see the top of this file). */
  private stream: Socket | undefined;
  /** Buffers of the queue in the write in flight on `stream`. */
  private streaming = 0;

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
    if (this.given !== undefined) this.stream = streamOf(this.given);
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
    if (this.stream) return this.writeQueue(this.stream);
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
    if (!this.regular) this.stream = streamOf(fd);
    this.pump();
  };

  /**
   * Everything queued, in one write(2) (writev: the batches that came while the last write waited, a
   * relay's pieces of one line), called back once all of it is written or the stream failed.
   */
  private writeQueue(stream: Socket): void {
    const queue = this.queue;
    this.streaming = queue.length;
    const first = this.offset === 0 ? queue[0]! : queue[0]!.subarray(this.offset);
    if (queue.length === 1) return void stream.write(first, this.streamed);
    stream.cork();
    stream.write(first);
    for (let i = 1; i < queue.length - 1; i++) stream.write(queue[i]!);
    stream.write(queue.at(-1)!, this.streamed);
    stream.uncork();
  }

  private readonly streamed = (err?: Error | null): void => {
    this.busy = false;
    // A failure (the reader gone) leaves what of it was written unknown: all of it is tried again.
    if (err) return this.fail(err as NodeJS.ErrnoException);
    for (let i = 0; i < this.streaming; i++) {
      const done = this.queue.shift()!;
      this.queued -= done.length - this.offset;
      this.offset = 0;
      this.events.written(done);
    }
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
    // Reopen next time: the file may have been rotated, remounted or recreated meanwhile. (A stream
    // on a descriptor given, stdout or a worker's pipe, is never closed: a failed write destroys one
    // of ours for good, and its retries count as failures; process.stdout takes writes again.)
    if (this.fd !== undefined && this.given === undefined) {
      if (this.stream) this.stream.destroy();
      else close(this.fd, noop);
      this.stream = undefined;
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
    // A write still in flight on the threadpool (a blocked pipe) keeps its fd: closing it under the
    // write is unsafe. A stream of ours cancels its write as it closes.
    if (this.fd !== undefined && this.given === undefined) {
      if (this.stream) this.stream.destroy();
      else if (!this.busy) close(this.fd, noop);
    }
    this.fd = undefined;
    return this.queued;
  }
}

/**
 * A stream that writes the pipe or socket `fd` in the event loop without blocking, or nothing (any
 * other kind of file). stdout and stderr are process.stdout and process.stderr, which already are such
 * streams on them (a second libuv handle on the same descriptor would miss its writability events).
 */
function streamOf(fd: number): Socket | undefined {
  let stream: Socket;
  try {
    const stat = fstatSync(fd);
    if (!stat.isFIFO() && !stat.isSocket()) return undefined;
    const stdio = fd === 1 ? process.stdout : fd === 2 ? process.stderr : undefined;
    if (stdio) {
      if (!(stdio instanceof Socket) || stdio.isTTY) return undefined;
      stream = stdio;
    } else {
      stream = new Socket({ fd, readable: false, writable: true });
    }
  } catch {
    return undefined; // not a descriptor libuv can stream: the threadpool write is always safe
  }
  // A failed write is reported to its callback (and retried); unheard, the event would throw.
  stream.on('error', noop);
  return stream;
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
