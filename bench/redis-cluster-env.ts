// The servers bench/redis-cluster.sh measures: the 6-node TLS + ACL Redis Cluster and, each in its own
// process started the same way (bench/proxy-process.ts), the agents in front of it (?mode=cluster, TLS
// to every node, audit on, a deny rule evaluated per command): startAgents in bench/redis-bench-setup.ts
// (agent, agent-resp3, the worker line, BENCH_AGENT_BEFORE's). This process only starts them. Prints `export NAME=value` lines (each
// agent's port and process id), then `# ready`, and runs until SIGTERM/SIGINT or stdin closes.
import { rm } from 'node:fs/promises';
import { CLUSTER_USERS, RedisCluster, clusterDatabaseDocs } from '../test/support/redis-cluster.js';
import { serveUntilStopped } from '../test/support/serve-until-stopped.js';
import { stopProcesses } from './proxy-process.js';
import { announceEnv, benchPolicyDocs, createBenchPki, startAgents } from './redis-bench-setup.js';

const cluster = await RedisCluster.start();
const pki = await createBenchPki('drawbridge-cluster-bench-');

const docs = [...clusterDatabaseDocs(cluster, 'bench', { env: 'bench' }), ...benchPolicyDocs()];
const common = { database: 'bench', docs, tls: pki.tls, dir: pki.dir };
const { agents, exports, variants } = await startAgents(common);

announceEnv(pki, {
  CLUSTER_PORT: cluster.ports[0]!,
  CLUSTER_CA: cluster.tls.caFile,
  CLUSTER_PASSWORD: CLUSTER_USERS.default.password,
  ...exports,
  AGENT_VARIANTS: variants,
});

serveUntilStopped(
  async () => {
    await stopProcesses(agents.map((p) => p.child));
    await cluster.stop();
    await rm(pki.dir, { recursive: true, force: true });
  },
  { untilStdinEnds: true },
);
