// Live sessions: each is re-checked when policy changes and ended at its TTL or credential expiry.
import { randomUUID } from 'node:crypto';
import type { Identity } from '../authn/identity.js';
import { type AccessRequest, type Decision, type Policy, checkAccess } from '../authz/engine.js';
import { DrawbridgeError } from '../errors.js';

export interface LiveSession {
  readonly id: string;
  readonly identity: Identity;
  /** The current request (Redis sessions may switch database user with AUTH). */
  request(): AccessRequest;
  /** Ends the session, telling the client why in its own protocol. */
  terminate(err: DrawbridgeError): void;
  /** Called after a policy change that still allows the session, e.g. to refresh command rules. */
  regrant?(decision: Extract<Decision, { allowed: true }>): void;
}

export function newSessionId(): string {
  return randomUUID();
}

/** Told of every session tracked and released (an agent worker's primary: workers/worker.ts). */
export interface SessionWatcher {
  opened(session: LiveSession): void;
  closed(id: string): void;
}

const SHARED_AUDIENCE_WITHDRAWN =
  'the session logged in with a token for the shared audience drawbridge.dev, which this Database no ' +
  'longer accepts (spec.workloads.acceptSharedAudience); use a token for its own audience';

/** Why a session that was allowed is not any more. */
export function revoked(reason: string): DrawbridgeError {
  return new DrawbridgeError(
    'SESSION_REVOKED',
    `access revoked: ${reason}`,
    'ask an admin to restore access',
  );
}

export class SessionRegistry {
  /** `since`: when the session was (re)decided, which its role TTL `ttlMs` counts from. */
  private readonly live = new Map<
    string,
    { session: LiveSession; since: number; ttlMs: number; timer: NodeJS.Timeout }
  >();
  /**
   * Policy changes re-checked so far. A session is decided before its backend login and tracked after
   * it: an engine compares this count across the login and decides again if a change came between,
   * which re-checked the sessions tracked then, not the one logging in.
   */
  private changed = 0;

  get changes(): number {
    return this.changed;
  }

  constructor(private readonly watcher?: SessionWatcher) {}

  get size(): number {
    return this.live.size;
  }

  /** Tracks a session until `release`; schedules its end at the earlier of role TTL and credential expiry. */
  add(session: LiveSession, ttlMs: number): void {
    const since = Date.now();
    this.live.set(session.id, { session, since, ttlMs, timer: expireAt(session, since, ttlMs) });
    this.watcher?.opened(session);
  }

  release(id: string): void {
    const entry = this.live.get(id);
    if (!entry) return;
    clearTimeout(entry.timer);
    this.live.delete(id);
    this.watcher?.closed(id);
  }

  /** Re-runs the access check for every session; those no longer allowed end now. */
  reevaluate(policy: Policy, database: AccessRequest['database']): void {
    this.changed++;
    for (const entry of [...this.live.values()]) {
      const session = entry.session;
      if (session.identity.sharedAudience && !database.spec.workloads?.acceptSharedAudience) {
        session.terminate(revoked(SHARED_AUDIENCE_WITHDRAWN));
        continue;
      }
      const req = { ...session.request(), database };
      const decision = checkAccess(session.identity, req, policy);
      if (!decision.allowed) {
        session.terminate(revoked(decision.reason));
        continue;
      }
      session.regrant?.(decision);
      // The TTL follows the roles too: a shorter maxSessionTTL ends a session that has outlived it.
      if (decision.ttlMs !== entry.ttlMs) {
        clearTimeout(entry.timer);
        entry.ttlMs = decision.ttlMs;
        entry.timer = expireAt(session, entry.since, decision.ttlMs);
      }
    }
  }

  /** Ends every session (agent shutdown). */
  terminateAll(err: DrawbridgeError): void {
    for (const { session } of [...this.live.values()]) session.terminate(err);
  }
}

/** A timer ending `session` at the earlier of `since` + `ttlMs` (its roles) and its credential's expiry. */
function expireAt(session: LiveSession, since: number, ttlMs: number): NodeJS.Timeout {
  const expiry = session.identity.expiresAt?.getTime();
  const byCert = expiry === undefined ? Infinity : expiry - Date.now();
  const byRole = since + ttlMs - Date.now();
  const ms = Math.max(0, Math.min(byRole, byCert));
  const timer = setTimeout(
    () =>
      session.terminate(
        new DrawbridgeError(
          'SESSION_EXPIRED',
          byRole <= byCert
            ? 'session reached the maximum session TTL of its role'
            : 'client certificate expired',
          'log in again (kubectl db login NAME) and reconnect',
        ),
      ),
    Math.min(ms, 2 ** 31 - 1),
  );
  timer.unref();
  return timer;
}
