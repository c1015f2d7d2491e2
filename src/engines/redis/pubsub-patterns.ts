// The patterns (PSUBSCRIBE) a session may hold: limits.maxPubSubPatterns, far below the 100,000
// subscriptions of pubsub-tracker.ts. Redis 7.0 looks a client's pattern up in a list on every
// PSUBSCRIBE (redis/redis#12298, fixed in 7.2), so N patterns on one connection cost the server O(N²):
// 20,000 short ones took a Redis 7.0 master 2 s, 100,000 would take minutes, and every PUBLISH is
// matched against each pattern held. The bound is kept here, as the commands are relayed, so a PSUBSCRIBE
// past it never reaches the server (the routers learn subscriptions from its confirmations, too late).
import { DrawbridgeError } from '../../errors.js';
import { MAX_SUBSCRIPTION_BYTES } from './pubsub-tracker.js';

export function tooManyPatterns(max: number): DrawbridgeError {
  return new DrawbridgeError(
    'TOO_MANY_SUBSCRIPTIONS',
    `PSUBSCRIBE refused: the session would hold more than ${max} pub/sub patterns (limits.maxPubSubPatterns) or ${MAX_SUBSCRIPTION_BYTES} bytes of their names`,
    'PUNSUBSCRIBE patterns no longer needed, use fewer and broader patterns, or raise maxPubSubPatterns in ' +
      "spec.agent.limits of the Database (or the AgentConfig's spec.limits)",
  );
}

/**
 * The patterns the session holds once the commands relayed so far have run. A PSUBSCRIBE the server
 * then refuses (an ACL) keeps its patterns counted until a PUNSUBSCRIBE or RESET: the count errs on the
 * side of the bound.
 */
export class PatternBound {
  /** Pattern bytes as latin1 strings (one char per byte, binary-safe). */
  private readonly held = new Set<string>();
  private bytes = 0;

  /** PSUBSCRIBE `names`: taken, or refused whole (nothing taken) when past `max` or the bytes bound. */
  subscribe(names: readonly Buffer[], max: number): DrawbridgeError | undefined {
    const fresh = new Set<string>();
    let bytes = this.bytes;
    for (const name of names) {
      const key = name.toString('latin1');
      if (this.held.has(key) || fresh.has(key)) continue;
      fresh.add(key);
      bytes += key.length;
      if (this.held.size + fresh.size > max || bytes > MAX_SUBSCRIPTION_BYTES) return tooManyPatterns(max);
    }
    for (const key of fresh) this.held.add(key);
    this.bytes = bytes;
    return undefined;
  }

  /** PUNSUBSCRIBE `names` (none: all of them). */
  unsubscribe(names: readonly Buffer[]): void {
    if (names.length === 0) return this.clear();
    for (const name of names) {
      const key = name.toString('latin1');
      if (this.held.delete(key)) this.bytes -= key.length;
    }
  }

  clear(): void {
    this.held.clear();
    this.bytes = 0;
  }

  get size(): number {
    return this.held.size;
  }
}
