// The servers bench/redis-cluster.sh measures: the 6-node TLS + ACL Redis Cluster and one agent in
// front of it (?mode=cluster, TLS to every node, audit on, a deny rule evaluated per command), and the
// same agent as the CLI runs it with BENCH_WORKERS (2) processes (the worker line; 1 skips it). Prints
// `export NAME=value` lines, then `# ready`, and runs until SIGTERM/SIGINT or stdin closes.
import { rm } from 'node:fs/promises';
import { createLogger } from '../src/log.js';
import { startTestAgent } from '../test/support/agent.js';
import { startWorkersAgent } from '../test/support/agent-workers.js';
import { CLUSTER_USERS, RedisCluster, clusterDatabaseDocs } from '../test/support/redis-cluster.js';
import { serveUntilStopped } from '../test/support/serve-until-stopped.js';
import { announceEnv, benchPolicyDocs, createBenchPki } from './redis-bench-setup.js';

const cluster = await RedisCluster.start();
const pki = await createBenchPki('drawbridge-cluster-bench-');

const docs = [...clusterDatabaseDocs(cluster, 'bench', { env: 'bench' }), ...benchPolicyDocs()];
const agent = await startTestAgent({
  database: 'bench',
  docs,
  tls: pki.tls,
  log: createLogger('bench-agent', 'warn'),
});
const workers = Number(process.env.BENCH_WORKERS ?? 2);
const multi =
  workers > 1 ? await startWorkersAgent({ database: 'bench', docs, tls: pki.tls, workers }) : undefined;

announceEnv(pki, {
  CLUSTER_PORT: cluster.ports[0]!,
  CLUSTER_CA: cluster.tls.caFile,
  CLUSTER_PASSWORD: CLUSTER_USERS.default.password,
  AGENT_PORT: agent.port,
  ...(multi
    ? {
        AGENT_WORKERS: workers,
        AGENT_WORKERS_PORT: multi.port,
        // Its CPU is the primary's and the workers'.
        AGENT_WORKERS_PIDS: `'${[multi.child.pid!, ...(await multi.workerPids())].join(' ')}'`,
      }
    : {}),
});

serveUntilStopped(
  async () => {
    await multi?.stop();
    await agent.stop(0);
    await cluster.stop();
    await rm(pki.dir, { recursive: true, force: true });
  },
  { untilStdinEnds: true },
);
