// The test servers' starters survive a port taken between freePort's check and the server's bind
// (another test's server, or a connection's local port, took it): each is handed a port somebody
// holds first, as the race would leave it, and must come up on a fresh one, with nothing of the
// failed try left running. For the cluster the taken port is a node's bus port (port + 10000); for the
// Kubernetes control plane, etcd's peer port or kube-apiserver's secure port.
import { readFileSync, readdirSync } from 'node:fs';
import { type Server, createServer } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type * as Ports from '../../support/ports.js';
import { freePort, freePortPair } from '../../support/ports.js';
import { startControlPlane } from '../../k8s/controlplane.js';
import { startPostgres } from '../../support/postgres.js';
import { startRedis } from '../../support/redis.js';
import { CLUSTER_BUS_OFFSET, RedisCluster } from '../../support/redis-cluster.js';

/** Ports the next freePort / freePortPair calls hand out before asking the kernel. */
const handOut = vi.hoisted(() => [] as number[]);

vi.mock('../../support/ports.js', async (importOriginal) => {
  const real = await importOriginal<typeof Ports>();
  return {
    ...real,
    freePort: async () => handOut.shift() ?? real.freePort(),
    freePortPair: async (offset: number) => handOut.shift() ?? real.freePortPair(offset),
  };
});

const holders: Server[] = [];

/** A free port P, with P + `offset` now held by a listener here (what the race leaves). */
async function taken(offset = 0): Promise<number> {
  const port = offset ? await freePortPair(offset) : await freePort();
  // It hangs up on whoever connects: the starters probe their port, and a silent peer stalls a probe.
  const srv = createServer((socket) => socket.destroy());
  await new Promise<void>((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ port: port + offset, host: '127.0.0.1', exclusive: true }, resolve);
  });
  holders.push(srv);
  return port;
}

/** Command lines of this machine's processes that mention `text` (what a failed try left running). */
function processesWith(text: string): string[] {
  return readdirSync('/proc')
    .filter((pid) => /^\d+$/.test(pid))
    .map((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
      } catch {
        return ''; // gone meanwhile
      }
    })
    .filter((cmd) => cmd.includes(text));
}

afterEach(async () => {
  await Promise.all(holders.splice(0).map((s) => new Promise((r) => s.close(r))));
  handOut.length = 0;
});

describe('a port taken before the server binds it', () => {
  it('standalone Redis starts again on fresh ports', async () => {
    const port = await taken();
    handOut.push(port);
    const redis = await startRedis();
    try {
      expect(handOut).toEqual([]);
      expect(redis.tlsPort).not.toBe(port);
      expect((await redis.cli(['PING'])).trim()).toBe('PONG');
    } finally {
      await redis.stop();
    }
  });

  it('PostgreSQL starts again on a fresh port', async () => {
    const port = await taken();
    handOut.push(port);
    const pg = await startPostgres();
    try {
      expect(handOut).toEqual([]);
      expect(pg.port).not.toBe(port);
      expect((await pg.admin('SELECT 1')).trim()).toBe('1');
    } finally {
      await pg.stop();
    }
  });

  it('a Redis Cluster node whose bus port is taken starts again on fresh ports; the cluster forms', async () => {
    const port = await taken(CLUSTER_BUS_OFFSET);
    handOut.push(port);
    const cluster = await RedisCluster.start();
    try {
      expect(handOut).toEqual([]);
      expect(cluster.ports).not.toContain(port);
      expect(cluster.ports).toHaveLength(6);
      expect(await cluster.masters()).toHaveLength(3);
    } finally {
      await cluster.stop();
    }
  });

  // The control plane takes its ports in this order: etcd client, etcd peer, kube-apiserver.
  it.each([
    ['etcd peer', 1, '--listen-peer-urls=http://127.0.0.1:'],
    ['kube-apiserver secure', 2, '--secure-port='],
  ])(
    'the Kubernetes control plane whose %s port is taken starts again on fresh ports',
    async (_, at, flag) => {
      const port = await taken();
      const free = [await freePort(), await freePort()];
      handOut.push(...free.slice(0, at), port);
      const plane = await startControlPlane();
      try {
        expect(handOut).toEqual([]);
        expect(processesWith(`${flag}${port} `)).toEqual([]);
        if (flag.startsWith('--secure')) expect(plane.server).not.toBe(`https://127.0.0.1:${port}`);
        expect(await plane.kubectl(['get', 'namespace', 'default', '-o', 'name'])).toBe(
          'namespace/default\n',
        );
      } finally {
        await plane.stop();
      }
    },
    180_000,
  );
});
