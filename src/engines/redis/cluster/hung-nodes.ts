// Gives up on cluster nodes that stop answering. A node can accept TCP and then say nothing (SIGSTOP,
// a stuck disk, a kernel hang, a partition that drops packets silently); TCP keepalive takes minutes
// to notice, and until then every session's commands for that node's slots wait on its pipelined
// connection. Semantics as envoy's redis_proxy `op_timeout`: a connection with commands in flight
// that receives no bytes for the command timeout is hung; any reply (even part of one) restarts the
// clock, so a long pipeline or a large value is never cut short. The hung connection is closed: its
// commands fail with NodeTimeoutError (they may still run on the node, so they are never retried) and
// the next command for that node opens a fresh connection. Other nodes' connections are untouched.
//
// What any node can answer (a new login's proof, COMMAND, the topology) is asked with `askAny`, which
// moves on from a silent node after a short hedge instead of waiting for the timeout.
//
// One sweep per ClusterService every quarter of the timeout, instead of a timer per command, keeps
// the per-command path free of timers: a connection only counts the data chunks it receives.
import { DrawbridgeError } from '../../../errors.js';
import { RedisReplyError } from '../router.js';
import { type NodeConnection, Resp3RefusedError } from './node-connection.js';

/** In-flight commands on a hung node connection fail with this; never retried (they may have run). */
export class NodeTimeoutError extends DrawbridgeError {
  constructor(label: string, limitMs: number) {
    super(
      'BACKEND_UNREACHABLE',
      `cluster node ${label} sent nothing for ${limitMs} ms; the command timed out and may or may not have run`,
      'the node may be overloaded or hung: check it (SLOWLOG, LATENCY, host) and retry; spec.redis.commandTimeout sets the limit',
    );
  }
}

/** What the client gets for a command lost to a hung node. */
export function timeoutReply(err: NodeTimeoutError): RedisReplyError {
  return new RedisReplyError('ERR', `drawbridge: ${err.message} (hint: ${err.hint})`);
}

/** How long one node may take to answer `askAny` before the next is asked too. */
export const HEDGE_MS = 200;

/**
 * Asks `nodes` in order until one answers: each gets HEDGE_MS before the next is asked too (at once
 * when it cannot be reached), and the first reply wins, whatever the others do later. A failure
 * `moveOn` accepts only moves the question on: by default a node that is unreachable or silent
 * (BACKEND_UNREACHABLE, NodeTimeoutError included); any other failure (a refused login, RESP3
 * refused) is what every node would say, and fails it at once. It fails with the last error only when
 * every node failed. For what any node can answer (a new login's proof, COMMAND, the cluster's shape):
 * a hung node must not fail, nor hold up for its timeout, what may never need that node.
 */
export function askAny<T>(
  nodes: readonly number[],
  ask: (node: number) => Promise<T>,
  moveOn: (err: unknown) => boolean = nodeTrouble,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let next = 0;
    let failed = 0;
    let done = false;
    let hedge: NodeJS.Timeout | undefined;
    const settle = () => {
      done = true;
      clearTimeout(hedge);
    };
    const askNext = () => {
      clearTimeout(hedge);
      if (done || next >= nodes.length) return;
      const node = nodes[next++]!;
      if (next < nodes.length) hedge = setTimeout(askNext, HEDGE_MS);
      ask(node).then(
        (reply) => {
          if (done) return;
          settle();
          resolve(reply);
        },
        (err: unknown) => {
          if (done) return;
          if (moveOn(err) && ++failed < nodes.length) return askNext();
          settle();
          reject(err);
        },
      );
    };
    askNext();
  });
}

/** The node is unreachable or silent; a refused HELLO 3 is the cluster's answer (Redis 5 nodes). */
function nodeTrouble(err: unknown): boolean {
  return (
    err instanceof DrawbridgeError &&
    err.code === 'BACKEND_UNREACHABLE' &&
    !(err instanceof Resp3RefusedError)
  );
}

/** The fewest milliseconds between sweeps, whatever the timeout. */
const MIN_TICK_MS = 50;

export class HungNodeWatch {
  /** Per busy connection: its data count at the last sweep and how many sweeps it has been silent. */
  private readonly silent = new WeakMap<NodeConnection, { progress: number; ticks: number }>();
  private readonly tickMs: number;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    /** The command timeout; a connection's own `replyLimitMs` (blocking commands) overrides it. */
    private readonly timeoutMs: number,
    private readonly connections: () => Iterable<NodeConnection>,
  ) {
    this.tickMs = Math.max(MIN_TICK_MS, Math.floor(timeoutMs / 4));
  }

  start(): void {
    this.timer ??= setInterval(() => this.sweep(), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /**
   * Silence is counted in sweeps, not wall-clock time: an agent whose event loop stalled (replies
   * waiting unread in the socket) must not blame the node. A timeout fires within a tick after it is due.
   */
  sweep(): void {
    for (const c of this.connections()) {
      // A connection still connecting counts too: a stopped node completes the TCP handshake (the
      // kernel does) but never the TLS one, and the command should not wait for the connect timeout.
      if (c.closed || c.inFlight === 0 || c.readPaused) {
        this.silent.delete(c);
        continue;
      }
      const seen = this.silent.get(c);
      if (!seen || seen.progress !== c.progress) {
        this.silent.set(c, { progress: c.progress, ticks: 0 });
        continue;
      }
      const limitMs = c.replyLimitMs ?? this.timeoutMs;
      if (limitMs > 0 && ++seen.ticks * this.tickMs >= limitMs) {
        this.silent.delete(c);
        c.destroy(new NodeTimeoutError(c.label, limitMs));
      }
    }
  }
}
