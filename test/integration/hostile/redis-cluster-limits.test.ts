// The unread subscriber against the real 6-node TLS Redis Cluster: cluster sessions subscribe on their
// own connections to the nodes (cluster/pubsub.ts), a different path from the standalone router, so
// the backpressure and the output limit are played here too, and the RESP3 session that subscribes,
// then waits in BLPOP while its messages are held back behind that reply (push-order.ts).
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
  resp,
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

it('a RESP3 cluster subscriber that reads but waits in BLPOP k 0 while 200 MB are published is disconnected: messages held behind the BLPOP count toward the limit', async () => {
  const before = await limitCount(f.agent, 'outputBuffer');
  const s = await f.raw('alice');
  await subscribeDeaf(s, 'firehose3', 3);
  const got = received(s, 90_000); // it reads whatever the agent writes
  s.resume();
  s.write(resp('BLPOP', 'never-pushed', '0'));
  const { buffers } = await peakGrowth(async () => {
    const node = tlsConnect({ host: '127.0.0.1', port: f.cluster.ports[0]!, ca: f.cluster.tls.caPem });
    await new Promise((r) => node.once('secureConnect', r));
    await publishFlood(node, ['admin', CLUSTER_USERS.admin.password], 'firehose3', 200, MB);
    await eventually(
      async () => (await limitCount(f.agent, 'outputBuffer')) > before,
      'the disconnect',
      60_000,
    );
  });
  expect(buffers).toBeLessThan(48 * MB);
  const end = await got;
  expect(end.closed).toBe(true);
  expect(end.text).toMatch(
    /not reading its pub\/sub messages: more than \d+ bytes of output wait \(limits\.outputBuffer\)/,
  );
});
