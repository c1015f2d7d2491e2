/**
 * A real 6-node Redis Cluster for tests and demos: 3 masters + 3 replicas on loopback, TLS everywhere
 * (clients, cluster bus, replication) and ACL users, created the way operators do it
 * (`redis-cli --cluster create ... --cluster-replicas 1`).
 *
 * Everything is asynchronous on purpose: tests run the agent in this same process, and a blocking
 * spawnSync here would stall the agent under load and fake latency spikes.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCA, issueCertificate, type KeyPairPem } from '../../src/pki/ca.js';
import { freePortPair, withFreshPorts } from './ports.js';
import { type ClusterNode, reaperFor, run } from './redis-cluster-process.js';
import { terminate } from './terminate.js';
import { redisDatabaseDocs } from './redis.js';

export const CLUSTER_BUS_OFFSET = 10_000;

/** How long a node has to exit after SIGTERM before it is killed. */
const STOP_GRACE_MS = 5_000;

/** ACL users on every node. `repl` is what replicas use to sync from their master. */
export const CLUSTER_USERS = {
  default: { password: 'default-secret', rules: '~* &* +@all' },
  admin: { password: 'admin-secret', rules: '~* &* +@all' },
  app: { password: 'app-secret', rules: '~* &* +@all -@dangerous +cluster|shards +cluster|slots' },
  // The agent learns commands (COMMAND, INFO) and the topology (CLUSTER SHARDS) as the session's user.
  reader: { password: 'reader-secret', rules: '~* &* -@all +@read +@connection +info +cluster|shards' },
  repl: { password: 'repl-secret', rules: '+psync +replconf +ping' },
} as const;
export type ClusterUserName = keyof typeof CLUSTER_USERS;

/**
 * A Database (`?mode=cluster`, verify-full TLS) for `cluster` with a password Secret for every ACL
 * user, and for the `extra` users a test adds to the nodes itself.
 */
export function clusterDatabaseDocs(
  cluster: RedisCluster,
  name = 'sessions',
  labels: Record<string, string> = { env: 'prod' },
  extra: Record<string, string> = {},
): object[] {
  return redisDatabaseDocs({
    name,
    uri: cluster.uri(),
    labels,
    caPem: cluster.tls.caPem,
    auth: 'password',
    login: {
      ...Object.fromEntries(Object.entries(CLUSTER_USERS).map(([u, v]) => [u, v.password])),
      ...extra,
    },
  });
}

export interface NodeView {
  id: string;
  port: number;
  role: 'master' | 'replica';
  /** Master node id, for replicas. */
  masterId?: string;
  failed: boolean;
  /** Slot ranges [start, end] served, for masters. */
  slots: [number, number][];
}

export interface ClusterTls {
  caFile: string;
  certFile: string;
  keyFile: string;
  caPem: string;
}

export interface RedisClusterOptions {
  /** Address the nodes listen on and announce (default 127.0.0.1); make e2e uses its node's bridge address. */
  host?: string;
  /** Passed to every node (`--cluster-node-timeout`); failover takes about twice this. */
  nodeTimeoutMs?: number;
  startTimeoutMs?: number;
}

const live = new Set<RedisCluster>();
// 'exit' handlers must be synchronous: kill hard, remove directories, no awaiting.
process.on('exit', () => {
  for (const c of live) c.killNow();
});

export class RedisCluster {
  readonly nodes: ClusterNode[] = [];
  private readonly reapers: (ChildProcess | undefined)[] = [];

  private constructor(
    readonly dir: string,
    readonly tls: ClusterTls,
    /** CA that signed the node certificate; tests issue client certificates from it. */
    readonly ca: KeyPairPem,
    private readonly opts: Required<RedisClusterOptions>,
  ) {}

  /** Starts 6 nodes, creates the cluster and waits until every node reports cluster_state:ok. */
  static async start(options: RedisClusterOptions = {}): Promise<RedisCluster> {
    const opts = { host: '127.0.0.1', nodeTimeoutMs: 2000, startTimeoutMs: 60_000, ...options };
    const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-redis-cluster-'));
    const ca = await createCA({ commonName: 'drawbridge test redis cluster CA' });
    const server = await issueCertificate(ca, {
      commonName: 'redis-cluster-node',
      dnsNames: ['localhost'],
      ipAddresses: [opts.host],
      usage: 'both', // nodes are TLS clients of each other on the bus and for replication
    });
    const tls = {
      caFile: path.join(dir, 'ca.crt'),
      certFile: path.join(dir, 'node.crt'),
      keyFile: path.join(dir, 'node.key'),
      caPem: ca.certPem,
    };
    await writeFile(tls.caFile, ca.certPem);
    await writeFile(tls.certFile, server.certPem);
    await writeFile(tls.keyFile, server.keyPem, { mode: 0o600 });
    const cluster = new RedisCluster(dir, tls, ca, opts);
    live.add(cluster);
    try {
      const launched = await Promise.allSettled([0, 1, 2, 3, 4, 5].map((i) => cluster.launchNode(i)));
      for (const l of launched) if (l.status === 'fulfilled') cluster.nodes.push(l.value);
      const failed = launched.find((l) => l.status === 'rejected');
      if (failed) throw failed.reason;
      await cluster.cli(cluster.nodes[0]!.port, [
        '--cluster',
        'create',
        ...cluster.nodes.map((n) => `${opts.host}:${n.port}`),
        '--cluster-replicas',
        '1',
        '--cluster-yes',
      ]);
      await cluster.waitHealthy();
    } catch (err) {
      await cluster.stop();
      throw err;
    }
    return cluster;
  }

  get host(): string {
    return this.opts.host;
  }

  get ports(): number[] {
    return this.nodes.map((n) => n.port);
  }

  /** The `spec.uri` a Database for this cluster uses (any node is a valid seed). */
  uri(seedPort = this.nodes[0]!.port): string {
    return `rediss://${this.host}:${seedPort}?mode=cluster`;
  }

  /** Runs redis-cli over TLS as `admin` against one node; resolves to stdout. */
  cli(port: number, args: string[], user: ClusterUserName = 'admin'): Promise<string> {
    const auth = ['--user', user, '--pass', CLUSTER_USERS[user].password, '--no-auth-warning'];
    return run('redis-cli', [...this.tlsArgs(), ...auth, '-h', this.host, '-p', String(port), ...args]);
  }

  /** `--tls --cacert ... --cert ... --key ...` for redis-cli / redis-benchmark talking to the nodes. */
  tlsArgs(): string[] {
    return ['--tls', '--cacert', this.tls.caFile, '--cert', this.tls.certFile, '--key', this.tls.keyFile];
  }

  /** The cluster as one live node sees it (`CLUSTER NODES`). */
  async view(port?: number): Promise<NodeView[]> {
    const alive = port ?? this.nodes.find((n) => !n.exited)!.port;
    return parseClusterNodes(await this.cli(alive, ['CLUSTER', 'NODES']));
  }

  async masters(): Promise<NodeView[]> {
    return (await this.view()).filter((n) => n.role === 'master' && !n.failed && n.slots.length > 0);
  }

  /**
   * SIGKILLs a master (the first by default) and resolves once its replica has been promoted and every
   * surviving node reports cluster_state:ok. Returns the killed and the promoted ports.
   */
  async killMaster(port?: number): Promise<{ killed: number; promoted: number }> {
    const before = await this.view();
    const victim = before.find(
      (n) => n.role === 'master' && n.slots.length > 0 && (!port || n.port === port),
    );
    if (!victim) throw new Error(`no serving master${port ? ` on port ${port}` : ''}`);
    const replica = before.find((n) => n.masterId === victim.id);
    if (!replica) throw new Error(`master ${victim.port} has no replica to promote`);
    const node = this.nodes.find((n) => n.port === victim.port)!;
    node.child.kill('SIGKILL');
    await this.until(`replica ${replica.port} promoted after killing ${victim.port}`, async () => {
      const role = (await this.view(replica.port)).find((n) => n.port === replica.port)?.role;
      if (role !== 'master') return `replica ${replica.port} is still a ${role}`;
      const states = await this.clusterStates();
      return states.every((s) => s === 'ok') || `cluster states ${states.join(',')}`;
    });
    return { killed: victim.port, promoted: replica.port };
  }

  /**
   * Moves `slots` slots from one master to another with `redis-cli --cluster reshard` (real
   * MIGRATING/IMPORTING states, so clients see ASK, TRYAGAIN and then MOVED). A small pipeline keeps
   * each slot in migration long enough for traffic to hit it.
   */
  async reshard(fromPort: number, toPort: number, slots: number, pipeline = 10): Promise<void> {
    const view = await this.view();
    const [from, to] = [fromPort, toPort].map((p) => view.find((n) => n.port === p)?.id);
    if (!from || !to) throw new Error(`no cluster node on port ${from ? toPort : fromPort}`);
    await this.cli(fromPort, [
      '--cluster', 'reshard', `${this.host}:${fromPort}`, '--cluster-from', from, '--cluster-to', to,
      '--cluster-slots', String(slots), '--cluster-pipeline', String(pipeline), '--cluster-yes',
    ]); // prettier-ignore
    await this.waitHealthy();
  }

  /**
   * Starts one more node and joins it as an empty master (`redis-cli --cluster add-node`): the cluster
   * names it, but it serves no slot until a reshard moves some to it. Resolves to its port.
   */
  async addMaster(): Promise<number> {
    const node = await this.launchNode(this.nodes.length);
    this.nodes.push(node);
    const seed = this.running()[0]!.port;
    await this.cli(seed, ['--cluster', 'add-node', `${this.host}:${node.port}`, `${this.host}:${seed}`]);
    await this.waitHealthy();
    return node.port;
  }

  /** Waits for cluster_state:ok on every running node and a synced link on every running replica. */
  async waitHealthy(): Promise<void> {
    await this.until('cluster_state:ok on every node', async () => {
      const states = await this.clusterStates();
      if (!states.every((s) => s === 'ok')) return `cluster states ${states.join(',')}`;
      const views = await Promise.all(this.running().map((n) => this.view(n.port)));
      const slotsSeen = views.map((v) =>
        v
          .filter((n) => !n.failed && n.slots.length > 0)
          .map((n) => `${n.id}:${JSON.stringify(n.slots)}`)
          .sort()
          .join(' '),
      );
      if (new Set(slotsSeen).size !== 1) return `nodes disagree on slots: ${slotsSeen.join(' | ')}`;
      const links = await Promise.all(this.running().map((n) => this.cli(n.port, ['INFO', 'replication'])));
      const syncing = links.filter((i) => !i.includes('role:master') && !i.includes('master_link_status:up'));
      return syncing.length === 0 || `${syncing.length} replicas not in sync`;
    });
  }

  /** Stops every node and removes the directory. Safe to call more than once. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => terminate(n, STOP_GRACE_MS)));
    this.reapers.forEach((r) => r?.kill('SIGKILL'));
    rmSync(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  killNow(): void {
    for (const n of this.nodes) if (!n.exited) n.child.kill('SIGKILL');
    this.reapers.forEach((r) => r?.kill('SIGKILL'));
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The last lines of a node's log, for test failure messages. */
  logTail(port: number, lines = 30): string {
    const node = this.nodes.find((n) => n.port === port);
    return node ? nodeLogTail(node, lines) : '(no such node)';
  }

  private running(): ClusterNode[] {
    return this.nodes.filter((n) => !n.exited);
  }

  private async clusterStates(): Promise<string[]> {
    return Promise.all(
      this.running().map(
        async (n) => /cluster_state:(\w+)/.exec(await this.cli(n.port, ['CLUSTER', 'INFO']))?.[1] ?? '?',
      ),
    );
  }

  /**
   * Starts node `index` and waits for its PONG, again on fresh ports if a port it was given was taken
   * before it could bind it. A node that fails is stopped, so a retry or a failed start leaves none.
   */
  private launchNode(index: number): Promise<ClusterNode> {
    return withFreshPorts(async () => {
      const node = await this.startNode(index);
      const reaper = reaperFor([node.child.pid]);
      try {
        await this.waitPing(node);
      } catch (err) {
        await terminate(node, STOP_GRACE_MS);
        reaper?.kill('SIGKILL');
        throw err;
      }
      this.reapers.push(reaper);
      return node;
    });
  }

  private async startNode(index: number): Promise<ClusterNode> {
    const port = await freePortPair(CLUSTER_BUS_OFFSET);
    // A fresh directory for each try: a node that could not bind may have written its nodes.conf.
    const dir = path.join(this.dir, `node-${index}`);
    await rm(dir, { recursive: true, force: true });
    await mkdir(dir);
    // Each rule is its own argv word: redis-server quotes a word with spaces as one value.
    const users = Object.entries(CLUSTER_USERS).flatMap(([name, u]) => [
      '--user',
      name,
      'on',
      `>${u.password}`,
      ...u.rules.split(' '),
    ]);
    const logPath = path.join(dir, 'redis.log');
    const args = [
      '--bind', this.host, '--port', '0', '--tls-port', String(port), '--dir', dir, '--logfile', logPath,
      '--tls-cert-file', this.tls.certFile, '--tls-key-file', this.tls.keyFile,
      '--tls-ca-cert-file', this.tls.caFile,
      // Client certificates are accepted (mtls backends) but not required (password backends).
      '--tls-auth-clients', 'optional', '--tls-cluster', 'yes', '--tls-replication', 'yes',
      '--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, 'nodes.conf'),
      '--cluster-node-timeout', String(this.opts.nodeTimeoutMs),
      '--masteruser', 'repl', '--masterauth', CLUSTER_USERS.repl.password,
      '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...users,
    ]; // prettier-ignore
    const out = openSync(path.join(dir, 'stdout.log'), 'a');
    const child = spawn('redis-server', args, { stdio: ['ignore', out, out] });
    closeSync(out);
    const node: ClusterNode = { port, dir, logPath, child, exited: false };
    child.once('exit', () => (node.exited = true));
    return node;
  }

  private async waitPing(node: ClusterNode): Promise<void> {
    await this.until(`node ${node.port} answering PING`, async () => {
      if (node.exited) throw new StartFailed(`redis-server on ${node.port} exited:\n${nodeLogTail(node)}`);
      return (await this.cli(node.port, ['PING'])).trim() === 'PONG' || 'no PONG';
    });
  }

  /** Polls `check` until it returns true; any other value (or error) is why it is not ready yet. */
  private async until(what: string, check: () => Promise<true | string>): Promise<void> {
    const deadline = Date.now() + this.opts.startTimeoutMs;
    let last: unknown;
    while (Date.now() < deadline) {
      try {
        last = await check();
        if (last === true) return;
      } catch (err) {
        if (err instanceof StartFailed) throw err;
        last = err;
      }
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
  }
}

/** Parses `CLUSTER NODES` output. Pure, exported for unit tests. */
export function parseClusterNodes(text: string): NodeView[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((line) => {
      const [id, addr, flags, master, , , , , ...slotFields] = line.split(' ');
      const flagSet = new Set((flags ?? '').split(','));
      const port = Number(/:(\d+)@/.exec(addr ?? '')?.[1]);
      const slots = slotFields
        .filter((s) => !s.startsWith('['))
        .map((s): [number, number] => {
          const [a, b] = s.split('-').map(Number);
          return [a!, b ?? a!];
        });
      return {
        id: id!,
        port,
        role: flagSet.has('master') ? 'master' : 'replica',
        ...(master && master !== '-' ? { masterId: master } : {}),
        failed: flagSet.has('fail') || flagSet.has('fail?'),
        slots,
      } satisfies NodeView;
    });
}

function nodeLogTail(node: ClusterNode, lines = 30): string {
  return readFileSync(node.logPath, 'utf8').split('\n').slice(-lines).join('\n');
}

/** Waiting can stop early: the thing waited for can no longer happen. */
class StartFailed extends Error {}
