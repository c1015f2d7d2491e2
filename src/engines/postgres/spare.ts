// One backend connection opened ahead of need: TCP and TLS done, no startup packet sent yet. A login
// that finds it skips the database's TCP accept (a process fork in PostgreSQL) and the TLS handshake,
// most of what the agent otherwise adds to a client's connect time.
//
// Only an authorized session's login opens a spare (to replace the one it took, or the one it would
// have liked), so an idle agent holds none and nothing a client sends before it is authorized reaches
// the database. A spare is closed after MAX_AGE_MS (well inside PostgreSQL's default
// authentication_timeout of 60 s; the server drops a connection that never sent a startup packet
// without a log line), when the server closes it, or when the target changes (reload, rotated client
// certificate). PostgreSQL refuses TLS session resumption (no tickets, no session cache), so a warm
// connection is the one way to take the backend handshake off the client's path.
import type { Socket } from 'node:net';
import type { BackendTarget } from './backend.js';

const MAX_AGE_MS = 30_000;

interface Spare {
  target: BackendTarget;
  socket: Socket;
  timer: NodeJS.Timeout;
}

export class SpareBackend {
  private spare: Spare | undefined;
  private opening = false;
  private closed = false;

  constructor(
    private readonly open: (target: BackendTarget) => Promise<Socket>,
    private readonly maxAgeMs = MAX_AGE_MS,
  ) {}

  /** The spare connection to `target`, if one is ready; either way, a new spare is opened behind it. */
  take(target: BackendTarget): Socket | undefined {
    const spare = this.spare;
    this.spare = undefined;
    let socket: Socket | undefined;
    if (spare) {
      this.release(spare);
      if (spare.target === target && !spare.socket.destroyed) socket = spare.socket;
      else spare.socket.destroy();
    }
    this.refill(target);
    return socket;
  }

  /** Closes the spare and opens no more (agent shutdown). */
  close(): void {
    this.closed = true;
    this.discard();
  }

  private refill(target: BackendTarget): void {
    if (this.opening || this.closed) return;
    this.opening = true;
    this.open(target).then(
      (socket) => {
        this.opening = false;
        if (this.closed || this.spare) return socket.destroy();
        this.keep(target, socket);
      },
      // The database is unreachable: the next login opens its own connection and reports why.
      () => (this.opening = false),
    );
  }

  private keep(target: BackendTarget, socket: Socket): void {
    const timer = setTimeout(this.discard, this.maxAgeMs);
    timer.unref();
    this.spare = { target, socket, timer };
    // Read, so a close by the server is seen at once; a server that speaks first is not PostgreSQL.
    socket.on('data', this.discard);
    socket.on('close', this.discard);
  }

  private release(spare: Spare): void {
    clearTimeout(spare.timer);
    spare.socket.off('data', this.discard);
    spare.socket.off('close', this.discard);
    spare.socket.pause();
  }

  private readonly discard = (): void => {
    const spare = this.spare;
    this.spare = undefined;
    if (!spare) return;
    this.release(spare);
    spare.socket.destroy();
  };
}
