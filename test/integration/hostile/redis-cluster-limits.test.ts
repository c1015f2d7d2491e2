// The unread subscriber against the real 6-node TLS Redis Cluster: cluster sessions subscribe on their
// own connections to the nodes (cluster/pubsub.ts), a different path from the standalone router, so
// the backpressure and the output limit are played here too.
import { connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CLUSTER_USERS } from '../../support/redis-cluster.js';
import { type ClusterFixture, clusterDocs, startClusterFixture } from '../redis/cluster-fixture.js';
import {
  MB,
  eventually,
  limitCount,
  peakGrowth,
  publishFlood,
  received,
  subscribeDeaf,
  withLimits,
} from './limits-support.js';

let f: ClusterFixture;

beforeAll(async () => {
  f = await startClusterFixture(undefined, (cluster) =>
    withLimits(clusterDocs(cluster), { outputBuffer: { maxBytes: '8Mi', stallTimeout: '2s' } }),
  );
  // The nodes keep whatever the agent does not read: only the agent's own limit can end the subscriber.
  for (const port of f.cluster.ports) {
    await f.cluster.cli(port, ['CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 0 0 0']);
  }
});

afterAll(async () => {
  await f?.stop();
});

it('a cluster subscriber that never reads while 200 MB are published is disconnected; memory stays bounded', async () => {
  const s = await f.raw('alice');
  await subscribeDeaf(s, 'firehose');
  const { buffers, rss } = await peakGrowth(async () => {
    // Straight to a node: Redis Cluster broadcasts PUBLISH to every node, the subscriber's included.
    const node = tlsConnect({ host: '127.0.0.1', port: f.cluster.ports[0]!, ca: f.cluster.tls.caPem });
    await new Promise((r) => node.once('secureConnect', r));
    await publishFlood(node, ['admin', CLUSTER_USERS.admin.password], 'firehose', 200, MB);
    await eventually(async () => (await limitCount(f.agent, 'outputBuffer')) >= 1, 'the disconnect', 60_000);
  });
  expect(buffers).toBeLessThan(48 * MB);
  expect(rss).toBeLessThan(128 * MB);
  s.resume();
  expect((await received(s)).closed).toBe(true);
});
