// Hostile: a policy change while commands of a Redis Cluster session still act: waiting behind a
// blocking command, or a subscription still heard (its node connections are the session's own).
// The agent's cluster router holds what a session sends after BLPOP (a blocking command is one of
// its barriers) and dispatches it when BLPOP returns: whenever someone pushes, or its timeout, which
// the client chooses. Those commands were decided when they arrived; a person who expects to lose a
// right sends BLPOP + the command before the change and lets it run after. Played against the real
// agent and the 6-node TLS+ACL Redis Cluster (the standalone case: redis-revoke-while-waiting).
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCluster, clusterDatabaseDocs } from '../../support/redis-cluster.js';
import type { NodeView } from '../../support/redis-cluster.js';
import { accessRole, peoplePolicy } from '../../support/redis.js';
import { type ClusterFixture, keyOn, startClusterFixture } from '../redis/cluster-fixture.js';
import { until } from './audit-support.js';
import { exchange, pipeline, untilClosed } from './resp.js';

let cluster: RedisCluster;
let f: ClusterFixture;
let master: NodeView;

/** The cluster's documents; `deny`: what alice's role `developer` denies besides @dangerous. */
const docs = (deny: string[] = []) => [
  ...clusterDatabaseDocs(cluster),
  ...peoplePolicy().map((d) =>
    (d as { metadata: { name: string } }).metadata.name === 'developer'
      ? accessRole(
          'developer',
          { databaseLabels: { env: '*' }, databaseUsers: ['default', 'app'] },
          { redisCommands: ['@dangerous', ...deny] },
        )
      : d,
  ),
];

beforeAll(async () => {
  cluster = await RedisCluster.start();
  f = await startClusterFixture(cluster, () => docs());
  master = (await cluster.masters())[0]!;
});

afterAll(async () => {
  await f?.stop();
  await cluster?.stop();
});

/** Waits until a new session of alice's gets a reply starting `want` to SET (within 300 ms). */
async function setGets(want: string): Promise<void> {
  await until(`SET answers ${want}`, async () => {
    const s = await f.raw('alice');
    const reply = exchange(s, pipeline([['SET', 'probe', '1']]), 1).then(([r]) => String(r), String);
    const got = await Promise.race([reply, sleep(300).then(() => 'waiting')]);
    s.destroy();
    return got.startsWith(want);
  });
}

describe('hostile: commands held behind a blocking command on a cluster', () => {
  it('one the grant refuses since: the session ends, nothing of it runs', async () => {
    const [list, written] = [keyOn(master, 'blk:list:'), keyOn(master, 'blk:write:')];
    const alice = await f.raw('alice');
    expect(await exchange(alice, pipeline([['PING']]), 1)).toEqual(['PONG']);
    const ended = untilClosed(alice, 5000);
    alice.write(
      pipeline([
        ['BLPOP', list, '0'],
        ['SET', written, '1'],
      ]),
    );
    try {
      await f.agent.writeDocs(docs(['set']));
      await setGets('-NOPERM');
      await cluster.cli(master.port, ['RPUSH', list, 'go']);
      const { replies, closed } = await ended;
      expect(replies).toEqual([
        expect.stringMatching(
          /^-ERR access revoked: "set" still waits on the server \(a blocking command, or behind one\) and is refused now: role "developer" denies "set"/,
        ),
      ]);
      expect(closed).toBe(true);
      // The session's blocking connection closed with it: the node dropped the BLPOP, nothing popped.
      expect(await cluster.cli(master.port, ['EXISTS', written])).toBe('0\n');
      expect(await cluster.cli(master.port, ['LLEN', list])).toBe('1\n');
    } finally {
      await f.agent.writeDocs(docs());
      await setGets('OK');
    }
  });

  it('a subscription whose SSUBSCRIBE is refused since: the session ends', async () => {
    const alice = await f.raw('alice');
    const [confirmed] = await exchange(alice, pipeline([['SSUBSCRIBE', 'news']]), 1);
    expect(confirmed).toEqual(['ssubscribe', 'news', 1]);
    const ended = untilClosed(alice, 5000);
    try {
      await f.agent.writeDocs(docs(['ssubscribe', 'set']));
      const { replies, closed } = await ended;
      expect(replies).toEqual([
        expect.stringMatching(
          /^-ERR access revoked: the session still listens on what "ssubscribe" subscribed to, which is refused now: role "developer" denies "ssubscribe"/,
        ),
      ]);
      expect(closed).toBe(true);
    } finally {
      await f.agent.writeDocs(docs());
      await setGets('OK');
    }
  });
});
