// Everything the sessions of one agent share about one Redis Cluster: the topology, the routing
// rules learned from `COMMAND`, and the connection pools per database login. Sessions come and go;
// this stays, so a new client session costs no CLUSTER SHARDS, no COMMAND and usually no connect.
import { createHash } from 'node:crypto';
import type { Database } from '../../../api/database.js';
import type { AgentMetrics } from '../../../agent/metrics.js';
import { LogBudget } from '../../../agent/log-budget.js';
import type { SecretReader } from '../../../api/agent-config.js';
import { DrawbridgeError, errorMessage } from '../../../errors.js';
import type { Logger } from '../../../log.js';
import { connectBackend } from '../backend-auth.js';
import type { Renew } from '../reauth.js';
import { RespError, type RespValue, decodeReply } from '../reply-parser.js';
import type { BackendLogin } from '../router.js';
import { type RespVersion, encodeCommand, resp2Value } from '../serializer.js';
import { type CommandRules, parseCommandReply } from './command-rules.js';
import { HungNodeWatch, askAny } from './hung-nodes.js';
import { type NodeConnection, NodeUnavailable } from './node-connection.js';
import { LoginPool } from './pool.js';
import { clusterSeeds, commandTimeoutMs, firstReply } from './seeds.js';
import type { RefusedReason } from './redirect.js';
import type { SendContext } from './sender.js';
import { type ClusterShape, parseClusterShards, parseClusterSlots } from './shape.js';
import { type NodeEntry, Topology } from './topology.js';

export interface ClusterServiceOptions {
  /** How long commands keep retrying through failovers and resharding (default 20 s). */
  retryBudgetMs?: number;
  /** How long a login's connections stay open after its last session ends (default 30 s). */
  idleCloseMs?: number;
  /** Where refused redirects are counted. */
  metrics?: AgentMetrics;
}

const CLUSTER_SHARDS = encodeCommand(['CLUSTER', 'SHARDS']);
const CLUSTER_SLOTS = encodeCommand(['CLUSTER', 'SLOTS']);
const COMMAND = encodeCommand(['COMMAND']);
const PING = encodeCommand(['PING']);

/**
 * Pools are shared per login. Rotating credentials (IAM tokens, which carry `expiresAt`) share one
 * pool per user, and new connections use the newest token; fixed secrets are part of the key, so a
 * changed password never rides on connections opened with the old one.
 */
function loginKey(login: BackendLogin): string {
  const c = login.credential;
  const secret =
    c.kind === 'password'
      ? c.expiresAt
        ? ''
        : [c.password, ...(c.fallbackPasswords ?? [])].join('\0')
      : c.kind === 'certificate'
        ? c.certPem
        : (login.clientPassword ?? '');
  return `${c.kind}:${c.user}:${createHash('sha256').update(secret).digest('base64url')}`;
}

/** RESP2 and RESP3 sessions of one login use separate pools (protocol.ts). */
function poolKey(login: BackendLogin, protocol: RespVersion): string {
  return `${loginKey(login)}:resp${protocol}`;
}

export class ClusterService implements SendContext {
  readonly topology: Topology;
  readonly retryBudgetMs: number;
  /** spec.redis.commandTimeout: how long a node may stay silent with commands in flight. */
  readonly commandTimeoutMs: number;
  private readonly idleCloseMs: number;
  private readonly hung: HungNodeWatch;
  private readonly pools = new Map<string, { pool: LoginPool; timer?: NodeJS.Timeout }>();
  private rulesByName: Map<string, CommandRules> | undefined;
  private loading: Promise<void> | undefined;
  private lastUsed: LoginPool | undefined;
  private rr = 0;
  private readonly tls: boolean;
  private readonly reshapeListeners = new Set<() => void>();
  private readonly metrics: AgentMetrics | undefined;
  /** A script may return 'MOVED 0 x' a hundred thousand times a second: a few lines, the rest counted. */
  private readonly redirectLog: LogBudget;

  constructor(
    private readonly database: Database,
    private readonly secrets: SecretReader,
    readonly log: Logger,
    /** Fresh credentials from the agent's provider (shared by every session of this agent). */
    private readonly renew: Renew,
    opts: ClusterServiceOptions = {},
  ) {
    this.retryBudgetMs = opts.retryBudgetMs ?? 20_000;
    this.idleCloseMs = opts.idleCloseMs ?? 30_000;
    this.metrics = opts.metrics;
    this.redirectLog = new LogBudget(log);
    this.commandTimeoutMs = commandTimeoutMs(database.spec);
    this.hung = new HungNodeWatch(this.commandTimeoutMs, () => this.connections());
    this.hung.start();
    this.tls = database.spec.tls.mode !== 'disabled';
    this.topology = new Topology({
      seeds: clusterSeeds(database.spec),
      fetchShape: (node) => this.fetchShape(node),
      onChange: (epoch) => {
        this.log.debug({ epoch, masters: this.topology.masters().length }, 'cluster topology changed');
        for (const l of this.reshapeListeners) l();
      },
      onRefreshError: (err) => this.log.warn({ err: errorMessage(err) }, 'cluster topology refresh failed'),
    });
  }

  private *connections(): IterableIterator<NodeConnection> {
    for (const { pool } of this.pools.values()) yield* pool.connections();
  }

  anyNode(): number {
    const masters = this.topology.masters();
    if (masters.length === 0) return 0; // the seed
    this.rr = (this.rr + 1) % masters.length;
    return masters[this.rr]!;
  }

  pubsubHome(): number {
    return this.topology.masters()[0] ?? 0;
  }

  /**
   * A MOVED/ASK not followed (redirect.ts), or a script's TRYAGAIN/CLUSTERDOWN/LOADING not retried
   * (sender.ts): a warning for whoever watches the agent, never a secret.
   */
  refusedRedirect(reason: RefusedReason, fields: Record<string, unknown>): void {
    this.metrics?.clusterRedirectsRefused.inc({ reason });
    const why =
      reason === 'script'
        ? 'cluster redirect or retry error in the reply to a script or function passed to the client; not followed, not re-run'
        : 'cluster redirect to a node the cluster does not name refused; nothing dialled';
    this.redirectLog.warn({ reason, ...fields }, why);
  }

  /** Calls `fn` after every change of the slot table or the node list; returns the unsubscribe. */
  onReshape(fn: () => void): () => void {
    this.reshapeListeners.add(fn);
    return () => this.reshapeListeners.delete(fn);
  }

  rules(name: string): CommandRules | undefined {
    return this.rulesByName?.get(name);
  }

  /** The pool for `login` speaking `protocol`, created on first use; pair every call with `leave`. */
  join(login: BackendLogin, protocol: RespVersion = 2): LoginPool {
    const key = poolKey(login, protocol);
    let entry = this.pools.get(key);
    if (!entry) {
      const pool = new LoginPool(
        key,
        login,
        (node, l) => this.connect(node, l),
        (node) => this.topology.entry(node).key,
        this.renew,
        protocol,
      );
      entry = { pool };
      this.pools.set(key, entry);
    }
    entry.pool.login = login;
    clearTimeout(entry.timer);
    entry.pool.users++;
    this.lastUsed = entry.pool;
    return entry.pool;
  }

  /** A session stopped using `pool`; its connections close after the idle grace. */
  leave(pool: LoginPool): void {
    const entry = this.pools.get(pool.key);
    if (!entry || --pool.users > 0) return;
    entry.timer = setTimeout(() => {
      if (pool.users > 0) return;
      pool.close();
      this.pools.delete(pool.key);
      if (this.lastUsed === pool) this.lastUsed = [...this.pools.values()][0]?.pool;
    }, this.idleCloseMs);
    entry.timer.unref();
  }

  /**
   * Learns the topology and the command rules once (with the first session's login), and proves
   * `pool`'s login works, so a bad credential fails the session at connect, as it does standalone.
   * An open connection of the login, in either protocol, is proof already: the PING is skipped, so a
   * new session costs no round trip. The PING that proves a new login goes to any master that
   * answers (askAny): a hung node fails only the commands that need it, never a login.
   */
  async ready(pool: LoginPool): Promise<void> {
    if (!this.loading) {
      this.loading = this.load(pool);
      this.loading.catch(() => (this.loading = undefined));
    }
    await this.loading;
    if (!this.proven(pool)) await this.queryAny(pool, PING);
  }

  /** Some connection of `pool`'s login is open and logged in, in its protocol or the other. */
  private proven(pool: LoginPool): boolean {
    if (pool.loggedIn) return true;
    const other = this.pools.get(poolKey(pool.login, pool.protocol === 2 ? 3 : 2));
    return other?.pool.loggedIn ?? false;
  }

  close(): void {
    this.hung.stop();
    for (const { pool, timer } of this.pools.values()) {
      clearTimeout(timer);
      pool.close();
    }
    this.pools.clear();
  }

  private async load(pool: LoginPool): Promise<void> {
    this.lastUsed = pool;
    // The first shape: from the seeds, the first answer winning, within the first-reply limit (seeds.ts).
    if (this.topology.masters().length === 0) await firstReply(this.database.spec, this.topology.learn());
    const reply = await this.queryAny(pool, COMMAND);
    if (reply instanceof RespError) {
      throw new DrawbridgeError(
        'BACKEND_UNREACHABLE',
        `cannot learn the cluster's commands: ${reply.message}`,
        'let the database user run COMMAND (ACL +command), or AUTH as one who can',
      );
    }
    this.rulesByName = parseCommandReply(reply);
  }

  private connect(node: number, login: BackendLogin) {
    const { host, port } = this.topology.entry(node).address;
    return connectBackend({ database: this.database, secrets: this.secrets, login, host, port });
  }

  /**
   * One command on `pool`'s shared connection to `node`, decoded in RESP2 shapes whatever the pool
   * speaks (CLUSTER SHARDS and COMMAND maps as flat arrays, as their parsers read them); connection
   * failures reject.
   */
  query(pool: LoginPool, node: number, raw: Buffer): Promise<RespValue> {
    return new Promise((resolve, reject) => {
      pool.sharedTo(node).send(raw, (reply) => {
        if (reply instanceof NodeUnavailable) reject(reply.error);
        else if (pool.protocol === 2) resolve(decodeReply(reply));
        else resolve(resp2Value(decodeReply(reply)));
      });
    });
  }

  /** `query` to the next master in turn, or another master if that one cannot answer (askAny). */
  private queryAny(pool: LoginPool, raw: Buffer): Promise<RespValue> {
    const first = this.anyNode();
    const nodes = [first, ...this.topology.masters().filter((m) => m !== first)];
    return askAny(nodes, (node) => this.query(pool, node, raw));
  }

  /** CLUSTER SHARDS, or CLUSTER SLOTS on servers (or ACLs) without it. */
  private async fetchShape(node: NodeEntry): Promise<ClusterShape> {
    const pool = this.lastUsed;
    if (!pool) throw new Error('no logged-in connection to ask the cluster its shape');
    const shards = await this.query(pool, node.id, CLUSTER_SHARDS);
    if (!(shards instanceof RespError)) return parseClusterShards(shards, this.tls);
    const slots = await this.query(pool, node.id, CLUSTER_SLOTS);
    if (slots instanceof RespError) {
      throw new DrawbridgeError(
        'BACKEND_UNREACHABLE',
        `cannot read the cluster topology from ${node.key}: ${shards.message}; ${slots.message}`,
        'let the database user run CLUSTER SHARDS or CLUSTER SLOTS (ACL +cluster|shards +cluster|slots)',
      );
    }
    return parseClusterSlots(slots);
  }
}
