// Shared set-up for the Redis Cluster suites: the 6-node TLS + ACL cluster, an agent in front of it
// (?mode=cluster), people with client certificates, and clients that only know plain Redis aimed at
// the agent: redis-cli without -c, ioredis without cluster mode, redis-benchmark without --cluster.
import { rm } from 'node:fs/promises';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import type { Redis } from 'ioredis';
import { keySlot } from '../../../src/engines/redis/cluster/key-slot.js';
import type { KeyPairPem } from '../../../src/pki/ca.js';
import type { AgentParts } from '../../../src/agent/engine.js';
import { type TestAgent, startTestAgent } from '../../support/agent.js';
import {
  type IoredisOptions,
  accessRole,
  exec,
  ioredisAt,
  issuePeopleTls,
  peoplePolicy,
  rawTls,
} from '../../support/redis.js';
import { type NodeView, RedisCluster, clusterDatabaseDocs } from '../../support/redis-cluster.js';

export const CLUSTER_PEOPLE = ['alice', 'rita', 'ops'] as const;
export type ClusterPerson = (typeof CLUSTER_PEOPLE)[number];

export interface ClusterFixture {
  cluster: RedisCluster;
  agent: TestAgent;
  ca: KeyPairPem;
  caFile: string;
  /** redis-cli (no -c) through the agent as `person`. */
  cli(person: ClusterPerson, args: string[], stdin?: string): Promise<string>;
  /** `--tls --cacert … --cert … --key …` for redis-cli / redis-benchmark through the agent. */
  tlsArgs(person: ClusterPerson): string[];
  /** A raw TLS connection to the agent (exact bytes). */
  raw(person: ClusterPerson): Promise<TLSSocket>;
  /** `person`'s TLS client options (CA, certificate, key), for other client libraries. */
  tls(person: ClusterPerson): Pick<ConnectionOptions, 'ca' | 'cert' | 'key'>;
  /** A non-cluster ioredis client through the agent. */
  ioredis(person: ClusterPerson, opts?: IoredisOptions): Redis;
  stop(): Promise<void>;
}

/** The first key `prefix` + n whose slot `master` serves. */
export function keyOn(master: NodeView, prefix: string): string {
  for (let i = 0; ; i++) {
    const key = `${prefix}${i}`;
    const slot = keySlot(Buffer.from(key));
    if (master.slots.some(([a, b]) => slot >= a && slot <= b)) return key;
  }
}

/** A role with allow.redisServerWide (the cluster's admin: CONFIG, CLUSTER MEET/SETSLOT..., scripts) for `person`. */
export function clusterAdmin(person: ClusterPerson): object[] {
  return [
    accessRole('cluster-admin', {
      databaseLabels: { env: '*' },
      databaseUsers: ['*'],
      redisServerWide: true,
    }),
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'DatabaseUser',
      metadata: { name: `${person}-cluster-admin` },
      spec: { subjects: [{ kind: 'User', name: person }], roles: ['cluster-admin'] },
    },
  ];
}

/**
 * The cluster Database and the test people's access (peoplePolicy); ops is the cluster's admin too
 * (without it: hostile/cluster-topology.test.ts).
 */
export function clusterDocs(cluster: RedisCluster): object[] {
  return [...clusterDatabaseDocs(cluster), ...peoplePolicy(), ...clusterAdmin('ops')];
}

export async function startClusterFixture(
  existing?: RedisCluster,
  docs: (cluster: RedisCluster) => object[] = clusterDocs,
  /** The agent's engines and credential providers, when a test swaps one (reauth-cluster.test.ts). */
  parts?: AgentParts,
): Promise<ClusterFixture> {
  const { dir, ca, caFile, agentTls, tls, tlsArgs } = await issuePeopleTls(
    CLUSTER_PEOPLE,
    'sessions agent',
    'drawbridge-clustertest-',
  );
  const cluster = existing ?? (await RedisCluster.start());
  let agent: TestAgent;
  try {
    agent = await startTestAgent({
      database: 'sessions',
      docs: docs(cluster),
      tls: agentTls,
      parts,
    });
  } catch (err) {
    if (!existing) await cluster.stop();
    throw err;
  }
  const clients = new Set<Redis>();
  return {
    cluster,
    agent,
    ca,
    caFile,
    tlsArgs,
    cli: (p, args, stdin) =>
      exec('redis-cli', [...tlsArgs(p), '-h', '127.0.0.1', '-p', String(agent.port), ...args], stdin),
    raw: (p) => rawTls(agent.port, tls(p)),
    tls,
    ioredis: (p, opts) => ioredisAt(agent.port, tls(p), clients, opts),
    async stop() {
      clients.forEach((c) => c.disconnect());
      await agent.stop();
      if (!existing) await cluster.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
