// The servers bench/redis-cluster.sh measures: the 6-node TLS + ACL Redis Cluster and, each in its own
// process started the same way (bench/proxy-process.ts), the agents in front of it (?mode=cluster, TLS
// to every node, audit on, a deny rule evaluated per command): the agent, the same agent with
// BENCH_WORKERS (2) worker processes (the worker line; 1 skips it) and, with BENCH_AGENT_BEFORE=<another
// build's dist>, that build's. This process only starts them. Prints `export NAME=value` lines (each
// agent's port and process id), then `# ready`, and runs until SIGTERM/SIGINT or stdin closes.
import { rm } from 'node:fs/promises';
import { CLUSTER_USERS, RedisCluster, clusterDatabaseDocs } from '../test/support/redis-cluster.js';
import { serveUntilStopped } from '../test/support/serve-until-stopped.js';
import { startAgentProcess, stopProcesses } from './proxy-process.js';
import { announceEnv, benchPolicyDocs, createBenchPki, startOtherAgents } from './redis-bench-setup.js';

const cluster = await RedisCluster.start();
const pki = await createBenchPki('drawbridge-cluster-bench-');

const docs = [...clusterDatabaseDocs(cluster, 'bench', { env: 'bench' }), ...benchPolicyDocs()];
const common = { database: 'bench', docs, tls: pki.tls, dir: pki.dir };
const agent = await startAgentProcess({ ...common, name: 'agent' });
const others = await startOtherAgents(common);

announceEnv(pki, {
  CLUSTER_PORT: cluster.ports[0]!,
  CLUSTER_CA: cluster.tls.caFile,
  CLUSTER_PASSWORD: CLUSTER_USERS.default.password,
  AGENT_PORT: agent.port,
  AGENT_PID: agent.child.pid!,
  ...others.exports,
});

serveUntilStopped(
  async () => {
    await stopProcesses([agent, ...others.agents].map((p) => p.child));
    await cluster.stop();
    await rm(pki.dir, { recursive: true, force: true });
  },
  { untilStdinEnds: true },
);
