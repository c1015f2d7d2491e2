// What a connection is subscribed to, learned from the backend's own subscribe/unsubscribe replies.
// In RESP2 a pub/sub message is an ordinary array, so the relay can only tell a push from a reply by
// knowing the connection is in subscribed (or MONITOR) mode — where Redis allows no command whose
// reply could look like one. In RESP3 messages and confirmations are `>` push frames, and a
// subscribed connection runs any command.
import { DrawbridgeError } from '../../errors.js';
import { RespPush, decodeReply } from './reply-parser.js';

export const enum SubscriptionKind {
  Channel = 1,
  Pattern = 2,
  ShardChannel = 3,
}

const MESSAGE = Buffer.from('*3\r\n$7\r\nmessage\r\n');
const PMESSAGE = Buffer.from('*4\r\n$8\r\npmessage\r\n');
const SMESSAGE = Buffer.from('*3\r\n$8\r\nsmessage\r\n');

const CHANGES: Record<string, [SubscriptionKind, boolean]> = {
  subscribe: [SubscriptionKind.Channel, true],
  unsubscribe: [SubscriptionKind.Channel, false],
  psubscribe: [SubscriptionKind.Pattern, true],
  punsubscribe: [SubscriptionKind.Pattern, false],
  ssubscribe: [SubscriptionKind.ShardChannel, true],
  sunsubscribe: [SubscriptionKind.ShardChannel, false],
};

/** The subscribe family (standalone and cluster): the commands, and the types of their confirmation frames. */
export const SUBSCRIBE_COMMANDS: ReadonlySet<string> = new Set(Object.keys(CHANGES));

// The agent keeps every subscription's name (to count the frames of a bare UNSUBSCRIBE; in a cluster,
// to subscribe again on another node), so a session may hold at most this many, and this many bytes
// of names: without a bound, distinct channel names would grow the agent without end (~150 bytes each).
export const MAX_SUBSCRIPTIONS = 100_000;
export const MAX_SUBSCRIPTION_BYTES = 16 * 1024 * 1024;

export function tooManySubscriptions(): DrawbridgeError {
  return new DrawbridgeError(
    'TOO_MANY_SUBSCRIPTIONS',
    `the session holds more than ${MAX_SUBSCRIPTIONS} subscriptions (channels, patterns and shard channels) or ${MAX_SUBSCRIPTION_BYTES} bytes of their names (Redis pub/sub)`,
    'subscribe to patterns (PSUBSCRIBE) rather than to each channel, or spread subscriptions over several connections',
  );
}

/** How many subscriptions a session holds, and the bytes of their names (latin1: one char a byte). */
export class SubscriptionBudget {
  private count = 0;
  private bytes = 0;

  /** Past either bound: the session is to end. */
  get exceeded(): boolean {
    return this.count > MAX_SUBSCRIPTIONS || this.bytes > MAX_SUBSCRIPTION_BYTES;
  }

  /** Adds `key` to `set` (a Map: with `value`), counting it when it is new. */
  add<V>(set: Set<string> | Map<string, V>, key: string, value?: V): void {
    if (!set.has(key)) {
      this.count++;
      this.bytes += key.length;
    }
    if (set instanceof Map) set.set(key, value as V);
    else set.add(key);
  }

  delete(set: Set<string> | Map<string, unknown>, key: string): void {
    if (!set.delete(key)) return;
    this.count--;
    this.bytes -= key.length;
  }

  clear(): void {
    this.count = this.bytes = 0;
  }
}

/** `prefix` (a RESP2 array header and more) starts `frame`, as an array (RESP2) or a push (RESP3 `>`). */
function startsWith(frame: Buffer, prefix: Buffer): boolean {
  const t = frame[0];
  return (
    frame.length > prefix.length &&
    (t === 0x2a || t === 0x3e) && // `*` or `>`
    frame.compare(prefix, 1, prefix.length, 1, prefix.length) === 0
  );
}

/** A message/pmessage/smessage push (RESP2 or RESP3), told by its raw bytes: relaying decodes nothing. */
export function isMessagePush(frame: Buffer): boolean {
  return startsWith(frame, MESSAGE) || startsWith(frame, PMESSAGE) || startsWith(frame, SMESSAGE);
}

export class PubSubTracker {
  private readonly sets = new Map<SubscriptionKind, Set<string>>([
    [SubscriptionKind.Channel, new Set()],
    [SubscriptionKind.Pattern, new Set()],
    [SubscriptionKind.ShardChannel, new Set()],
  ]);
  private readonly budget = new SubscriptionBudget();
  /** MONITOR answered +OK: every later frame but RESET's reply is a monitor line. */
  monitoring = false;
  /** True while any frame may be a push: subscribed to something, or in MONITOR mode. */
  active = false;

  /**
   * A frame other than a RESP3 `>` push that answers no command (call only while `active`): in RESP3
   * only monitor lines, since subscribed connections get their messages as `>` pushes.
   */
  isPush(frame: Buffer, resp3: boolean): boolean {
    return this.monitoring || (!resp3 && isMessagePush(frame));
  }

  /** A RESP3 push confirming a (p|s)(un)subscribe (it answers that command), not a message. */
  isConfirmation(frame: Buffer): boolean {
    if (isMessagePush(frame)) return false;
    const push = decodeReply(frame);
    const kind = push instanceof RespPush ? push.items[0] : undefined;
    return Buffer.isBuffer(kind) && SUBSCRIBE_COMMANDS.has(kind.toString('latin1'));
  }

  /** How many frames `UNSUBSCRIBE`-style commands without arguments will get (one when none). */
  replyCount(kind: SubscriptionKind): number {
    return Math.max(1, this.sets.get(kind)!.size);
  }

  /** Updates the subscription sets from a (p|s)(un)subscribe reply frame; throws past the bounds. */
  observe(frame: Buffer): void {
    if (frame[0] !== 0x2a /* * */ && frame[0] !== 0x3e /* > */) return;
    const decoded = decodeReply(frame);
    const reply = decoded instanceof RespPush ? decoded.items : decoded;
    if (!Array.isArray(reply) || !Buffer.isBuffer(reply[0])) return;
    const change = CHANGES[reply[0].toString('latin1')];
    const name = reply[1];
    if (!change || !Buffer.isBuffer(name)) return;
    const set = this.sets.get(change[0])!;
    if (change[1]) this.budget.add(set, name.toString('latin1'));
    else this.budget.delete(set, name.toString('latin1'));
    if (this.budget.exceeded) throw tooManySubscriptions();
    this.update();
  }

  /** MONITOR answered +OK: every later frame is a monitor line. */
  monitorStarted(reply: Buffer): void {
    if (reply[0] === 0x2b /* + */) this.monitoring = true;
    this.update();
  }

  /** RESET answered: the backend left subscribed and MONITOR modes. */
  reset(reply: Buffer): void {
    if (reply[0] !== 0x2b) return;
    this.monitoring = false;
    for (const s of this.sets.values()) s.clear();
    this.budget.clear();
    this.update();
  }

  private update(): void {
    let n = 0;
    for (const s of this.sets.values()) n += s.size;
    this.active = this.monitoring || n > 0;
  }
}
