// Connection slots: how many client connections one agent replica and one identity may hold. The
// agent counts every accepted socket (logged in or not); engines claim a slot for an identity as soon
// as they know who the client is (a client certificate at once, a token once verified). With several
// worker processes the primary holds the counts for the whole replica (workers/primary.ts).
import { DrawbridgeError } from '../errors.js';

/** The limits named in metrics and errors, as spelled in spec.agent.limits. */
export type LimitName =
  | 'maxConnections'
  | 'maxConnectionsPerIdentity'
  | 'authTimeout'
  | 'maxRequestBytes'
  | 'unauthenticatedRequest'
  | 'outputBuffer'
  | 'subscriptions'
  | 'maxPubSubPatterns'
  | 'unansweredMessages';

/**
 * The limit a client's input hit, from the error it ended its session with (counted in
 * drawbridge_limit_exceeded_total); undefined for errors that are not a limit. A request's size counts
 * against `unauthenticatedRequest` until the client has logged in.
 */
export function limitOf(code: string, authenticated: boolean): LimitName | undefined {
  switch (code) {
    case 'MESSAGE_TOO_LARGE':
      return authenticated ? 'maxRequestBytes' : 'unauthenticatedRequest';
    case 'TOO_MANY_UNANSWERED':
      return 'unansweredMessages';
    case 'TOO_MANY_SUBSCRIPTIONS':
      return 'subscriptions';
    default:
      return undefined;
  }
}

const WHERE = "spec.agent.limits of the Database (or the AgentConfig's spec.limits)";

export function tooManyConnections(max: number): DrawbridgeError {
  return new DrawbridgeError(
    'TOO_MANY_CONNECTIONS',
    `max number of clients reached: this agent holds ${max} connections (limits.maxConnections)`,
    `retry later, or raise maxConnections / add replicas in ${WHERE}`,
  );
}

export function tooManyForIdentity(user: string, max: number): DrawbridgeError {
  return new DrawbridgeError(
    'TOO_MANY_CONNECTIONS',
    `"${user}" already has ${max} connections to this agent (limits.maxConnectionsPerIdentity)`,
    `close idle connections (connection pools: fewer connections), or raise maxConnectionsPerIdentity in ${WHERE}`,
  );
}

/** Slot counts by key: an identity's user, or null for every connection of the replica. */
export class Slots {
  private readonly held = new Map<string | null, number>();

  /** How many `key` held before; takes one more only when that was under `cap`. */
  take(key: string | null, cap: number): number {
    const n = this.held.get(key) ?? 0;
    if (n < cap) this.held.set(key, n + 1);
    return n;
  }

  release(key: string | null, count = 1): void {
    const n = (this.held.get(key) ?? 0) - count;
    if (n <= 0) this.held.delete(key);
    else this.held.set(key, n);
  }

  entries(): IterableIterator<[string | null, number]> {
    return this.held.entries();
  }
}
