// The servers bench/redis-cluster.sh measures: the 6-node TLS + ACL Redis Cluster and one agent in
// front of it (?mode=cluster, TLS to every node, audit on, a deny rule evaluated per command). Prints
// `export NAME=value` lines, then `# ready`, and runs until SIGTERM/SIGINT or stdin closes.
import { rm } from 'node:fs/promises';
import { createLogger } from '../src/log.js';
import { startTestAgent } from '../test/support/agent.js';
import { CLUSTER_USERS, RedisCluster, clusterDatabaseDocs } from '../test/support/redis-cluster.js';
import { serveUntilStopped } from '../test/support/serve-until-stopped.js';
import { announceEnv, benchPolicyDocs, createBenchPki } from './redis-bench-setup.js';

const cluster = await RedisCluster.start();
const pki = await createBenchPki('drawbridge-cluster-bench-');

const agent = await startTestAgent({
  database: 'bench',
  docs: [...clusterDatabaseDocs(cluster, 'bench', { env: 'bench' }), ...benchPolicyDocs()],
  tls: pki.tls,
  log: createLogger('bench-agent', 'warn'),
});

announceEnv(pki, {
  CLUSTER_PORT: cluster.ports[0]!,
  CLUSTER_CA: cluster.tls.caFile,
  CLUSTER_PASSWORD: CLUSTER_USERS.default.password,
  AGENT_PORT: agent.port,
});

serveUntilStopped(
  async () => {
    await agent.stop(0);
    await cluster.stop();
    await rm(pki.dir, { recursive: true, force: true });
  },
  { untilStdinEnds: true },
);
