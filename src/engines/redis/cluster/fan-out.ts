// Commands that concern the whole keyspace (DBSIZE, KEYS, FLUSHALL, SCRIPT LOAD, INFO, ...) run on
// every master — or every node, when Redis's request_policy says all_nodes — and their replies are
// merged by the response policy. SCAN walks the masters one after another behind one cursor.
import type { RedisCommand } from '../parser.js';
import { RedisReplyError } from '../router.js';
import { type RespVersion, arrayHeader, bulkReply, encodeCommand } from '../serializer.js';
import { findCrlf, parseRespInt } from '../chunk-buffer.js';
import type { CommandRules } from './command-rules.js';
import type { NodeConnection } from './node-connection.js';
import { type Reply, mergeReplies, sumCounts } from './merge.js';
import { decodeScanCursor, nextScanCursor } from './scan-cursor.js';
import { type Done, type Lane, RoutedSend, type SendContext } from './sender.js';

export interface FanOutTarget {
  ctx: SendContext;
  lane: Lane;
  /** What the lane's connections speak: replies come, and the merged one goes, in it. */
  proto: RespVersion;
  /** A write filled a connection: the session stops reading until it drains (sender.ts). */
  onFull: (conn: NodeConnection) => void;
}

/**
 * Sends `raw` to each node of the policy and merges the replies into one `done` (by the response
 * policy, unless `merge` says otherwise).
 */
export function fanOut(
  t: FanOutTarget,
  rules: CommandRules,
  raw: Buffer,
  done: Done,
  merge: (replies: Reply[], labels: string[]) => Reply = (r, l) =>
    mergeReplies(rules.responsePolicy, r, l, t.proto),
): boolean {
  const topology = t.ctx.topology;
  const nodes = rules.requestPolicy === 'all_nodes' ? topology.allNodes() : [...topology.masters()];
  if (nodes.length === 0) {
    done(new RedisReplyError('CLUSTERDOWN', 'the cluster topology is not known yet; retry in a moment'));
    return true;
  }
  const replies = new Array<Reply>(nodes.length);
  const labels = nodes.map((n) => topology.entry(n).key);
  let left = nodes.length;
  let ok = true;
  nodes.forEach((node, i) => {
    const send = new RoutedSend(t.ctx, {
      raw,
      slot: -1,
      pick: () => node,
      idempotent: rules.flags.has('readonly'),
      lane: t.lane,
      onFull: t.onFull,
      done: (reply) => {
        replies[i] = reply;
        if (--left === 0) done(merge(replies, labels));
      },
    });
    ok = send.start() && ok;
  });
  return ok;
}

/**
 * PUBSUB SHARDCHANNELS / SHARDNUMSUB. A shard channel's subscribers are on the master owning its slot
 * (the agent subscribes there too), not on the pub/sub home node that answers the rest of PUBSUB; so
 * every master is asked, and channel lists are concatenated, counts summed per channel.
 */
export function shardPubsub(t: FanOutTarget, cmd: RedisCommand, rules: CommandRules, done: Done): boolean {
  const all: CommandRules = { ...rules, requestPolicy: 'all_shards', responsePolicy: undefined };
  if (cmd.name === 'pubsub|shardchannels') return fanOut(t, all, cmd.raw, done);
  return fanOut(t, all, cmd.raw, done, (replies) => sumCounts(replies, t.proto));
}

/**
 * SCAN cursor [MATCH p] [COUNT n] [TYPE t] against the master the cursor points at. The master is
 * looked up by position at every attempt, so after a failover the promoted replica continues the scan.
 */
export function scan(t: FanOutTarget, cmd: RedisCommand, done: Done): boolean {
  const masters = t.ctx.topology.masters();
  const cursorArg = cmd.args[1];
  if (!cursorArg) {
    done(new RedisReplyError('ERR', "wrong number of arguments for 'scan' command"));
    return true;
  }
  if (masters.length === 0) {
    done(new RedisReplyError('CLUSTERDOWN', 'the cluster topology is not known yet; retry in a moment'));
    return true;
  }
  const pos = decodeScanCursor(cursorArg.toString('latin1'), masters.length);
  if (!pos) {
    done(new RedisReplyError('ERR', 'invalid cursor'));
    return true;
  }
  const raw = encodeCommand([cmd.args[0]!, pos.cursor, ...cmd.args.slice(2)]);
  return new RoutedSend(t.ctx, {
    raw,
    slot: -1,
    pick: () => t.ctx.topology.masters()[pos.node] ?? t.ctx.anyNode(),
    idempotent: true,
    lane: t.lane,
    onFull: t.onFull,
    done: (reply) => {
      if (!Buffer.isBuffer(reply) || reply[0] !== 0x2a) {
        done(reply);
        return;
      }
      const split = splitScanReply(reply);
      if (!split) {
        done(new RedisReplyError('ERR', 'unexpected SCAN reply from a cluster node'));
        return;
      }
      const next = nextScanCursor(pos.node, split.cursor, t.ctx.topology.masters().length);
      done(Buffer.concat([arrayHeader(2), bulkReply(next), split.keys]));
    },
  }).start();
}

/** `*2 $n cursor *k ...` → the cursor text and the raw keys array (not decoded). */
export function splitScanReply(frame: Buffer): { cursor: string; keys: Buffer } | undefined {
  const h = findCrlf(frame, 1, frame.length);
  if (h < 0 || parseRespInt(frame, 1, h) !== 2 || frame[h + 2] !== 0x24) return undefined;
  const lenEnd = findCrlf(frame, h + 3, frame.length);
  const len = parseRespInt(frame, h + 3, lenEnd);
  if (!(len >= 0)) return undefined;
  const start = lenEnd + 2;
  return { cursor: frame.toString('latin1', start, start + len), keys: frame.subarray(start + len + 2) };
}
