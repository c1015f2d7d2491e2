// A session's client input while the audit log is behind in required mode: the chunk just read goes
// back unread and the socket stops reading, so the client's own TCP window pushes back on it. The
// session says what happens next: resume (if nothing else of its own holds the socket) or end.
import type { Socket } from 'node:net';
import { DrawbridgeError } from '../errors.js';
import type { AuditSink } from './audit.js';

export class AuditHold {
  private waiting = false;

  constructor(
    private readonly socket: Socket,
    private readonly audit: AuditSink,
    /** No error: the sink takes events again. An error: it stayed stuck; end the session with it. */
    private readonly then: (err?: DrawbridgeError) => void,
  ) {}

  hold(chunk: Buffer): void {
    this.socket.pause();
    this.socket.unshift(chunk);
    if (this.waiting) return;
    this.waiting = true;
    this.audit.whenWritable!(this.resumed);
  }

  private readonly resumed = (err?: DrawbridgeError): void => {
    this.waiting = false;
    this.then(err);
  };
}

/**
 * Why a session ends when required mode dropped its event (emit returned false): one read of the
 * client's (a command whose line alone is past the bound) took the log past twice its buffer.
 */
export function auditOverflow(): DrawbridgeError {
  return new DrawbridgeError(
    'AUDIT_UNAVAILABLE',
    'the audit log is more than twice its buffer behind; the session ends because its command could not be audited',
    "reconnect later; an admin should check the agent's audit log destination (disk space, log pipeline)",
  );
}
