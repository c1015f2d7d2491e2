// Connection slots: how many client connections one agent replica and one identity may hold. The
// agent counts every accepted socket (logged in or not); engines claim a slot for an identity as soon
// as they know who the client is (a client certificate at once, a token once verified).
import type { Identity } from '../authn/identity.js';
import { DrawbridgeError } from '../errors.js';

/** The limits named in metrics and errors, as spelled in spec.agent.limits. */
export type LimitName =
  | 'maxConnections'
  | 'maxConnectionsPerIdentity'
  | 'authTimeout'
  | 'maxRequestBytes'
  | 'unauthenticatedRequest'
  | 'outputBuffer';

const WHERE = "spec.agent.limits of the Database (or the AgentConfig's spec.limits)";

export function tooManyConnections(max: number): DrawbridgeError {
  return new DrawbridgeError(
    'TOO_MANY_CONNECTIONS',
    `max number of clients reached: this agent holds ${max} connections (limits.maxConnections)`,
    `retry later, or raise maxConnections / add replicas in ${WHERE}`,
  );
}

function tooManyForIdentity(user: string, max: number): DrawbridgeError {
  return new DrawbridgeError(
    'TOO_MANY_CONNECTIONS',
    `"${user}" already has ${max} connections to this agent (limits.maxConnectionsPerIdentity)`,
    `close idle connections (connection pools: fewer connections), or raise maxConnectionsPerIdentity in ${WHERE}`,
  );
}

export class IdentitySlots {
  private readonly held = new Map<string, number>();

  /** Takes a slot for `identity`; throws TOO_MANY_CONNECTIONS when it already holds `max`. */
  claim(identity: Identity, max: number): void {
    const n = this.held.get(identity.user) ?? 0;
    if (n >= max) throw tooManyForIdentity(identity.user, max);
    this.held.set(identity.user, n + 1);
  }

  release(identity: Identity): void {
    const n = this.held.get(identity.user) ?? 0;
    if (n <= 1) this.held.delete(identity.user);
    else this.held.set(identity.user, n - 1);
  }
}
