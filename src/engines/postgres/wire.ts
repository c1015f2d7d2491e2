// Awaitable reads for the connection handshake (client startup, backend authentication). The relay
// does not use this: once a session is established, sockets stream straight through MessageScanner.
import type { Socket } from 'node:net';
import { backendTlsFailure } from '../../api/backend-tls.js';
import { DrawbridgeError } from '../../errors.js';
import type { Frame, StartupPacket } from './messages.js';
import { type FrameLimits, HandshakeBuffer } from './parser.js';

/**
 * The 'error' listener of an open socket: errors surface as 'close' to whoever reads it, and this keeps
 * them from crashing the agent. Shared, not inline, so a session's sockets keep no handshake closure
 * (and everything it captured) alive.
 */
export const ignoreError = (): void => undefined;

/** Past this many unread bytes the socket is paused: a peer cannot make the handshake buffer grow. */
const PAUSE_AT = 64 * 1024;

export class Wire {
  private readonly buffer = new HandshakeBuffer();
  private wake: (() => void) | undefined;
  private closed: DrawbridgeError | undefined;
  /** The socket's error, which Node emits just before 'close': a TLS one is reported as such. */
  private error: Error | undefined;

  constructor(
    readonly socket: Socket,
    /** Names the peer in errors: "client" or "database". */
    private readonly peer: string,
  ) {
    socket.on('data', this.onData);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private readonly onError = (err: Error): void => {
    this.error = err;
  };

  private readonly onData = (chunk: Buffer): void => {
    this.buffer.push(chunk);
    if (this.buffer.length > PAUSE_AT) this.socket.pause();
    this.notify();
  };

  private readonly onClose = (): void => {
    const tls = this.peer === 'client' ? undefined : backendTlsFailure(this.error, 'during startup');
    this.closed =
      tls ??
      new DrawbridgeError(
        this.peer === 'client' ? 'PROTOCOL_ERROR' : 'BACKEND_UNREACHABLE',
        `the ${this.peer} closed the connection during startup`,
      );
    this.notify();
  };

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async read<T>(parse: () => T | undefined): Promise<T> {
    for (;;) {
      const value = parse();
      if (value !== undefined) return value;
      if (this.closed) throw this.closed;
      if (this.socket.isPaused()) this.socket.resume();
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  /** The next startup-phase packet (SSLRequest, GSSENCRequest, CancelRequest, StartupMessage). */
  startup(): Promise<StartupPacket> {
    return this.read(() => this.buffer.startup());
  }

  /** The next typed message, validated against `limits`. */
  message(limits: FrameLimits): Promise<Frame> {
    return this.read(() => this.buffer.message(limits));
  }

  /** Bytes received but not read yet. */
  get buffered(): number {
    return this.buffer.length;
  }

  /** Stops reading (the socket is paused) and returns unread bytes, for TLS upgrade or the relay. */
  detach(): Buffer {
    this.socket.pause();
    this.socket.off('data', this.onData);
    this.socket.off('error', this.onError);
    this.socket.off('close', this.onClose);
    return this.buffer.take();
  }
}
