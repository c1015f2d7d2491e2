// The servers bench/redis-cluster.sh measures: the 6-node TLS + ACL Redis Cluster and one agent in
// front of it (?mode=cluster, TLS to every node, audit on, a deny rule evaluated per command). Prints
// `export NAME=value` lines, then `# ready`, and runs until SIGTERM/SIGINT or stdin closes.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../src/log.js';
import { createCA, issueCertificate } from '../src/pki/ca.js';
import { startTestAgent } from '../test/support/agent.js';
import { accessRole, databaseUser, issuePeople } from '../test/support/redis.js';
import { CLUSTER_USERS, RedisCluster, clusterDatabaseDocs } from '../test/support/redis-cluster.js';

const cluster = await RedisCluster.start();
const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-cluster-bench-'));
const ca = await createCA({ commonName: 'drawbridge bench CA' });
const serving = await issueCertificate(ca, {
  commonName: 'bench agent',
  ipAddresses: ['127.0.0.1'],
  usage: 'server',
});
const { bench } = await issuePeople(ca, dir, ['bench']);
await writeFile(path.join(dir, 'ca.crt'), ca.certPem);

const agent = await startTestAgent({
  database: 'bench',
  docs: [
    ...clusterDatabaseDocs(cluster, 'bench', { env: 'bench' }),
    accessRole(
      'bench',
      { databaseLabels: { env: '*' }, databaseUsers: ['default'] },
      { redisCommands: ['shutdown'] },
    ),
    databaseUser('bench', ['bench']),
  ],
  tls: { certPem: serving.certPem, keyPem: serving.keyPem, clientCaPem: ca.certPem },
  log: createLogger('bench-agent', 'warn'),
});

const out = {
  CLUSTER_PORT: cluster.ports[0],
  CLUSTER_CA: cluster.tls.caFile,
  CLUSTER_PASSWORD: CLUSTER_USERS.default.password,
  AGENT_PORT: agent.port,
  CLIENT_CA: path.join(dir, 'ca.crt'),
  CLIENT_CERT: bench.certFile,
  CLIENT_KEY: bench.keyFile,
};
for (const [k, v] of Object.entries(out)) process.stdout.write(`export ${k}=${v}\n`);
process.stdout.write('# ready\n');

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await agent.stop(0);
  await cluster.stop();
  await rm(dir, { recursive: true, force: true });
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
process.stdin.on('end', () => void stop());
process.stdin.resume();
