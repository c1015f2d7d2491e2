/**
 * Starts the test Redis Cluster from the shell, for demos and poking around:
 *
 *   make redis-cluster-up      (builds, then runs dist/test/support/redis-cluster-cli.js)
 *
 * Prints how to reach a node with redis-cli and keeps running until Ctrl+C, then removes everything.
 */
import { CLUSTER_USERS, RedisCluster } from './redis-cluster.js';
import { serveUntilStopped } from './serve-until-stopped.js';

const cluster = await RedisCluster.start();
const [first] = cluster.ports;
process.stdout.write(
  [
    `6-node Redis Cluster up on 127.0.0.1 ports ${cluster.ports.join(', ')} (state and logs in ${cluster.dir})`,
    `  redis-cli -c ${cluster.tlsArgs().join(' ')} -p ${first} --user admin --pass ${CLUSTER_USERS.admin.password}`,
    `  Database spec.uri: ${cluster.uri()}  (CA: ${cluster.tls.caFile})`,
    'Ctrl+C stops it.',
    '',
  ].join('\n'),
);

serveUntilStopped(() => cluster.stop());
