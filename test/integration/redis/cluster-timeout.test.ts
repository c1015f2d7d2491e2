// A cluster node that accepts connections but stops answering (SIGSTOP on a real master): its commands
// fail after spec.redis.commandTimeout with a "timed out" error, other masters keep serving, and the
// node is used again once it answers. Blocking commands get their own timeout, not the command one.
// A new session is never failed by the silent node, even the first one of a login, whose login is
// proven with a PING to some master; nor is a topology refresh held up for the command timeout when
// it asks the silent node first. A new agent whose only seed is silent fails its first session
// within the first-reply limit, naming the fix (spec.redis.seedNodes); with another seed listed it
// serves. The cluster's node timeout is long, so the stopped master is not failed over during the test.
import type { NodeView } from '../../support/redis-cluster.js';
import { RedisCluster } from '../../support/redis-cluster.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '../../../src/engines/redis/cluster/key-slot.js';
import { ClusterRouters } from '../../../src/engines/redis/cluster/index.js';
import { RedisEngine, standaloneRouters } from '../../../src/engines/redis/index.js';
import type { ClusterService } from '../../../src/engines/redis/cluster/service.js';
import { agentParts } from '../../../src/wiring.js';
import { type ClusterFixture, clusterDocs, startClusterFixture } from './cluster-fixture.js';
import { Wire } from './cluster-wire.js';

const COMMAND_TIMEOUT = '1s';
/** The second agent's: long enough to tell a refresh that waited for it, short of the node timeout (15 s). */
const LONG_TIMEOUT_MS = 10_000;

let f: ClusterFixture;
let victim: NodeView;
let victimKey: string;
let otherKey: string;

/** The fixture's documents with spec.redis.commandTimeout (and more) set on the Database. */
function docsWithTimeout(
  cluster: RedisCluster,
  commandTimeout = COMMAND_TIMEOUT,
  spec: { uri?: string; seedNodes?: string[] } = {},
): object[] {
  return clusterDocs(cluster).map((d) => {
    const doc = d as { kind: string; spec: object };
    if (doc.kind !== 'Database') return d;
    const { seedNodes, ...top } = spec;
    return { ...doc, spec: { ...doc.spec, ...top, redis: { commandTimeout, seedNodes } } };
  });
}

/** A key whose slot `master` serves. */
function keyOn(master: NodeView, prefix: string): string {
  for (let i = 0; ; i++) {
    const slot = keySlot(Buffer.from(`${prefix}${i}`));
    if (master.slots.some(([a, b]) => slot >= a && slot <= b)) return `${prefix}${i}`;
  }
}

/** Sends SIGSTOP to the master's process, runs `fn`, and always sends SIGCONT. */
async function whileStopped<T>(master: NodeView, fn: () => Promise<T>): Promise<T> {
  const pid = f.cluster.nodes.find((n) => n.port === master.port)!.child.pid!;
  process.kill(pid, 'SIGSTOP');
  try {
    return await fn();
  } finally {
    process.kill(pid, 'SIGCONT');
  }
}

beforeAll(async () => {
  const cluster = await RedisCluster.start({ nodeTimeoutMs: 15_000 });
  try {
    f = await startClusterFixture(cluster, docsWithTimeout);
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  const [a, b] = await cluster.masters();
  victim = a!;
  victimKey = keyOn(victim, 'hung');
  otherKey = keyOn(b!, 'fine');
});

afterAll(async () => {
  await f?.stop();
  await f?.cluster.stop();
});

describe('a hung cluster node', () => {
  it('a blocking command waits its own timeout, not the command timeout', async () => {
    const c = f.ioredis('alice');
    expect(await c.blpop('cluster-timeout-empty', 2)).toBeNull();
  });

  it('its commands time out; other masters keep serving, new sessions too; it is used again once it answers', async () => {
    const hungClient = f.ioredis('alice');
    const otherClient = f.ioredis('alice');
    await hungClient.set(victimKey, 'victim-value');
    await otherClient.set(otherKey, 'other-value');

    const txClient = f.ioredis('alice');
    const events: string[] = [];
    const [hungError, txError] = await whileStopped(victim, async () => {
      const hung = hungClient.get(victimKey).then(
        () => 'answered',
        (err: Error) => (events.push('timed out'), err.message),
      );
      const tx = txClient
        .multi()
        .set(victimKey, 'from-tx')
        .exec()
        .then(
          () => 'answered',
          // ioredis reports EXEC refused (EXECABORT) and the queued command's own error inside.
          (err: Error & { previousErrors?: Error[] }) => err.previousErrors?.[0]?.message ?? err.message,
        );
      expect(await otherClient.get(otherKey)).toBe('other-value');
      events.push('other master answered');
      const error = await hung;
      // A session opened meanwhile is not held up by the silent node either.
      expect((await f.cli('alice', ['GET', otherKey])).trim()).toBe('other-value');
      return [error, await tx];
    });

    expect(events).toEqual(['other master answered', 'timed out']);
    const timedOut = new RegExp(
      `^ERR drawbridge: cluster node 127\\.0\\.0\\.1:${victim.port} sent nothing for 1000 ms; ` +
        'the command timed out and may or may not have run \\(hint: .*spec\\.redis\\.commandTimeout',
    );
    expect(hungError).toMatch(timedOut);
    // The transaction's own connection (a new one, still in its TLS handshake) is watched too.
    expect(txError).toMatch(timedOut);
    // The transaction may have run on the node once it woke: either value is what the error promised.
    expect(['victim-value', 'from-tx']).toContain(await hungClient.get(victimKey));
  });

  it('the first session of a database user logs in while a master is stopped', async () => {
    // Each new login is proven by one PING to the next master in turn (which keyless commands take
    // too: raw connections send none): over as many new logins as there are masters, one PING goes to
    // the stopped master, unless the proof moves on from it.
    const users = ['admin', 'app', 'reader'] as const;
    expect((await f.cluster.masters()).length).toBeLessThanOrEqual(users.length);
    await f.ioredis('alice').set(otherKey, 'first-logins');
    const replies = await whileStopped(victim, async () => {
      const out: string[] = [];
      for (const user of users) {
        const w = await Wire.open(f, 'ops');
        // ops may be any database user; with a client certificate the AUTH password is not used.
        out.push((await w.call(['AUTH', user, 'unused'], ['GET', otherKey])).join(''));
        w.close();
      }
      return out;
    });
    expect(replies).toEqual(users.map(() => '+OK\r\n$12\r\nfirst-logins\r\n'));
  });

  it('a topology refresh moves on from the stopped master it asks first', async () => {
    // A second agent whose command timeout is long, and whose cluster state the test can reach: a
    // refresh (what every MOVED and failed connection triggers) asks the master of slot 0 first.
    let routers: ClusterRouters | undefined;
    const parts = {
      ...agentParts,
      engines: {
        ...agentParts.engines,
        redis: async () =>
          new RedisEngine({
            standalone: standaloneRouters,
            cluster: async () => (routers = new ClusterRouters()),
          }),
      },
    };
    const g = await startClusterFixture(
      f.cluster,
      (c) => docsWithTimeout(c, `${LONG_TIMEOUT_MS / 1000}s`),
      parts,
    );
    try {
      const masters = await f.cluster.masters();
      const first = masters.find((m) => m.slots.some(([a]) => a === 0))!;
      const healthyKey = keyOn(
        masters.find((m) => m !== first)!,
        'topo',
      );
      await f.ioredis('alice').set(healthyKey, 'still-served');
      // The agent's first session learns the topology (from the seed).
      expect((await g.cli('alice', ['GET', healthyKey])).trim()).toBe('still-served');
      const services = (routers as unknown as { services: Map<string, ClusterService> }).services;
      const topology = [...services.values()][0]!.topology;
      expect(topology.entry(topology.masters()[0]!).address.port).toBe(first.port);

      const [reply, refreshMs] = await whileStopped(first, async () => {
        const started = Date.now();
        const refreshed = topology.refresh().then(() => Date.now() - started);
        const got = await g.cli('alice', ['GET', healthyKey]);
        return [got, await refreshed] as const;
      });
      expect(reply.trim()).toBe('still-served');
      // The old refresh waited for the stopped node's timeout before asking the next: >= LONG_TIMEOUT_MS.
      expect(refreshMs).toBeLessThan(LONG_TIMEOUT_MS / 2);
      expect(topology.masters()).toHaveLength(masters.length);
    } finally {
      await g.stop();
    }
  }, 30_000);

  it('a new agent whose only seed is stopped fails the first session fast, naming the fix; with another seed it serves', async () => {
    // The seed is spec.uri's node; the agents' command timeout is long, and the node is stopped for
    // less than the cluster's node timeout, so nothing fails over.
    const masters = await f.cluster.masters();
    const [seed, other] = [masters[0]!, masters[1]!];
    const key = keyOn(other, 'seedless');
    await f.ioredis('alice').set(key, 'served');
    const timeout = `${LONG_TIMEOUT_MS / 1000}s`;
    const lone = await startClusterFixture(f.cluster, (c) =>
      docsWithTimeout(c, timeout, { uri: c.uri(seed.port) }),
    );
    const two = await startClusterFixture(f.cluster, (c) =>
      docsWithTimeout(c, timeout, { uri: c.uri(seed.port), seedNodes: [`127.0.0.1:${other.port}`] }),
    );
    try {
      const [loneReply, loneMs, twoReply] = await whileStopped(seed, async () => {
        const started = Date.now();
        const reply = await lone.cli('alice', ['GET', key]).catch((err: Error) => err.message);
        const ms = Date.now() - started;
        return [reply, ms, await two.cli('alice', ['GET', key])] as const;
      });
      expect(loneReply).toMatch(
        new RegExp(
          `no node of the cluster answered within \\d+ ms: 127\\.0\\.0\\.1:${seed.port} \\(spec\\.uri\\).*` +
            "list more of the cluster's nodes in spec\\.redis\\.seedNodes",
        ),
      );
      // Before: the first session waited for the connect timeout (10 s), twice.
      expect(loneMs).toBeLessThan(LONG_TIMEOUT_MS);
      expect(twoReply.trim()).toBe('served');
      // Once the seed answers again, the lone agent serves too.
      expect((await lone.cli('alice', ['GET', key])).trim()).toBe('served');
    } finally {
      await lone.stop();
      await two.stop();
    }
  }, 60_000);
});
