// What answers a command sent to a standalone backend connection (standalone-router.ts): nearly always
// one frame; the subscribe family one per channel, and MONITOR, RESET and HELLO a mode change read from
// their reply. Kept apart from the router so that the queue logic there reads on its own.
import { SubscriptionKind } from './pubsub-tracker.js';

/**
 * What answers an in-flight command. Positive: that many subscription reply frames are still due.
 * Negative: resolved when the first frame arrives (how many channels an argument-less UNSUBSCRIBE
 * drops is only known then), or a mode change to apply once the reply is seen.
 */
export const enum Expect {
  OneFrame = 0,
  AllChannels = -SubscriptionKind.Channel,
  AllPatterns = -SubscriptionKind.Pattern,
  AllShardChannels = -SubscriptionKind.ShardChannel,
  Monitor = -4,
  Reset = -5,
  /** HELLO 2|3: its reply's type says which protocol the connection speaks from then on. */
  Hello = -6,
  // Marks seen only by dispatch (answered as OneFrame): a re-AUTH must not be queued in a transaction.
  TxStart = -7,
  TxEnd = -8,
  /** SUBSCRIBE, PSUBSCRIBE, SSUBSCRIBE: one frame per channel named (none named: Redis's error). */
  Subscribe = -9,
}

/** Every command not answered by exactly one frame, so that the others cost one lookup. */
export const SPECIAL: ReadonlyMap<string, Expect> = new Map([
  ['subscribe', Expect.Subscribe],
  ['psubscribe', Expect.Subscribe],
  ['ssubscribe', Expect.Subscribe],
  ['unsubscribe', Expect.AllChannels],
  ['punsubscribe', Expect.AllPatterns],
  ['sunsubscribe', Expect.AllShardChannels],
  ['monitor', Expect.Monitor],
  ['reset', Expect.Reset],
  ['hello', Expect.Hello],
  ['multi', Expect.TxStart],
  ['exec', Expect.TxEnd],
  ['discard', Expect.TxEnd],
]);

/** Expects of a subscribe-family command: a count of frames, or all of one kind's. */
export function isSubscription(expect: number): boolean {
  return expect > 0 || (expect <= Expect.AllChannels && expect >= Expect.AllShardChannels);
}

/** Frames that arrived back to back in one chunk are one view; others are copied together. */
export function joinFrames(parts: Buffer[]): Buffer {
  const first = parts[0]!;
  let end = first.byteOffset + first.length;
  for (let i = 1; i < parts.length; i++) {
    const p = parts[i]!;
    if (p.buffer !== first.buffer || p.byteOffset !== end) return Buffer.concat(parts);
    end += p.length;
  }
  return Buffer.from(first.buffer, first.byteOffset, end - first.byteOffset);
}
