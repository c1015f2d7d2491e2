// Query cancellation. A client sees the server's real process id (NOTIFY carries it, pg_stat_activity
// and pg_terminate_backend know it) with a secret of the agent's own: 32 random bits, as unguessable
// as PostgreSQL's. A CancelRequest naming that pair is forwarded, with the backend's real secret, over
// a fresh backend connection. A guessed or stale secret cancels nothing, and no client can cancel
// another session's query through the agent: the server's secret never leaves the agent.
import { randomBytes } from 'node:crypto';
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
  /** Per backend process id, its sessions' secrets (one, unless a reload pointed at another server). */
  private readonly keys = new Map<number, { secretKey: number; backend: CancelTarget }[]>();

  get size(): number {
    return this.keys.size;
  }

  /** The key a client gets for one session: the backend's process id, a fresh secret; until `release`. */
  issue(backend: CancelTarget): CancelKey {
    const processId = backend.processId;
    const entries = this.keys.get(processId) ?? [];
    let secretKey: number;
    do secretKey = randomBytes(4).readInt32BE(0);
    while (entries.some((e) => e.secretKey === secretKey));
    entries.push({ secretKey, backend });
    this.keys.set(processId, entries);
    return { processId, secretKey };
  }

  release(key: CancelKey): void {
    const entries = this.keys.get(key.processId);
    if (!entries) return;
    const rest = entries.filter((e) => e.secretKey !== key.secretKey);
    if (rest.length > 0) this.keys.set(key.processId, rest);
    else this.keys.delete(key.processId);
  }

  /** `release` for one key, as a callback that holds nothing else. */
  releaser(key: CancelKey): () => void {
    const { processId, secretKey } = key;
    return () => this.release({ processId, secretKey });
  }

  /** The backend key for a client's key, or undefined when the pair does not match a live session. */
  lookup(key: CancelKey): CancelTarget | undefined {
    return this.keys.get(key.processId)?.find((e) => e.secretKey === key.secretKey)?.backend;
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
