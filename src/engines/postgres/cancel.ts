// Query cancellation. A client only ever sees the agent's own BackendKeyData (a random process id and
// secret per session); a CancelRequest naming them is forwarded, with the backend's real key, over a
// fresh backend connection. A guessed or stale key cancels nothing, and no client can cancel another
// session's query through the agent.
import { randomBytes, randomInt } from 'node:crypto';
import { type BackendTarget, openBackend } from './backend.js';
import { cancelRequest } from './serializer.js';

/** Where a cancel for one session goes: the backend, and the key the backend gave that session. */
export interface CancelTarget {
  target: BackendTarget;
  processId: number;
  secretKey: number;
}

export interface CancelKey {
  processId: number;
  secretKey: number;
}

const CANCEL_TIMEOUT_MS = 5_000;

export class CancelKeys {
  private readonly keys = new Map<number, { secretKey: number; backend: CancelTarget }>();

  get size(): number {
    return this.keys.size;
  }

  /** A fresh agent-side key for one session, mapped to its backend key until `release`. */
  issue(backend: CancelTarget): CancelKey {
    let processId: number;
    do processId = randomInt(1, 0x7fff_ffff);
    while (this.keys.has(processId));
    const secretKey = randomBytes(4).readInt32BE(0);
    this.keys.set(processId, { secretKey, backend });
    return { processId, secretKey };
  }

  release(processId: number): void {
    this.keys.delete(processId);
  }

  /** `release` for one key, as a callback that holds nothing else. */
  releaser(processId: number): () => void {
    return () => this.keys.delete(processId);
  }

  /** The backend key for an agent key, or undefined when the pair does not match a live session. */
  lookup(key: CancelKey): CancelTarget | undefined {
    const entry = this.keys.get(key.processId);
    return entry && entry.secretKey === key.secretKey ? entry.backend : undefined;
  }
}

/** Sends the backend's CancelRequest over a new connection (TLS per spec.tls) and waits for it to close. */
export async function forwardCancel(backend: CancelTarget): Promise<void> {
  const socket = await openBackend(backend.target);
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => socket.destroy(), CANCEL_TIMEOUT_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    // The server acts on the request and closes without answering; reading lets us see that close.
    socket.resume();
    socket.end(cancelRequest(backend.processId, backend.secretKey));
  });
}
