// Hostile: one pub/sub user, allowed PSUBSCRIBE, asking for tens of thousands of patterns on one
// session. Redis 7.0 spends time quadratic in one connection's patterns (5 × 10,000 kept a master busy
// for 66 s), so the agent refuses a PSUBSCRIBE past limits.maxPubSubPatterns (default 1,024) before
// the server sees it. A real Redis 7.0 and the 6-node TLS Redis Cluster behind the real agent.
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterFixture, startClusterFixture } from '../redis/cluster-fixture.js';
import { type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { eventually, limitCount, resp } from './limits-support.js';

let f: RedisFixture;
let cluster: ClusterFixture;
const started = Promise.all([startRedisFixture(), startClusterFixture()]);
beforeAll(async () => void ([f, cluster] = await started), 120_000);
afterAll(() => started.then((both) => Promise.all(both.map((x) => x.stop()))));

const patterns = (batch: number, n: number) => Array.from({ length: n }, (_, i) => `pat:${batch}:${i}:*`);

/** What the client heard: psubscribe confirmations, the refusals naming the bound, and all text. */
function listen(s: TLSSocket) {
  const heard = { text: '', confirmed: 0, refused: 0 };
  const confirmation = '$10\r\npsubscribe\r\n';
  const refusal = '(limits.maxPubSubPatterns)';
  let tail = '';
  s.on('data', (d: Buffer) => {
    const seen = tail + d.toString('latin1');
    heard.confirmed += seen.split(confirmation).length - 1;
    heard.refused += seen.split(refusal).length - 1;
    heard.text += d.toString('latin1');
    tail = seen.slice(-(refusal.length - 1));
  });
  return heard;
}

/** The most patterns any connection of the server holds (`psub=` of CLIENT LIST), on every node. */
async function mostPatternsHeld(mode: 'standalone' | 'cluster'): Promise<number> {
  const lists =
    mode === 'standalone'
      ? [await f.redis.cli(['CLIENT', 'LIST'], 'admin')]
      : await Promise.all(
          cluster.cluster.nodes
            .filter((n) => !n.exited)
            .map((n) => cluster.cluster.cli(n.port, ['CLIENT', 'LIST'])),
        );
  return Math.max(...lists.flatMap((l) => [...l.matchAll(/ psub=(\d+)/g)].map((m) => Number(m[1]))));
}

describe.each(['standalone', 'cluster'] as const)('%s', (mode) => {
  it('a PSUBSCRIBE past 1,024 patterns is refused naming the limit and never reaches Redis; the session and the server go on', async () => {
    const fx = mode === 'cluster' ? cluster : f;
    const before = await limitCount(fx.agent, 'maxPubSubPatterns');
    const alice = await fx.raw('alice');
    const heard = listen(alice);
    // Up to the bound: every pattern is confirmed.
    alice.write(resp('PSUBSCRIBE', ...patterns(0, 1024)));
    await eventually(() => heard.confirmed >= 1024 || heard.refused > 0, 'the first 1,024 confirmations');
    expect(heard.refused).toBe(0);
    // The attack: 5 × 10,000 more, pipelined (each refused whole), and one naming held patterns only.
    for (let batch = 1; batch <= 5; batch++) alice.write(resp('PSUBSCRIBE', ...patterns(batch, 10_000)));
    alice.write(resp('PSUBSCRIBE', ...patterns(0, 3)));
    await eventually(() => heard.refused >= 5 || heard.confirmed > 1027, 'the refusals', 60_000);
    await eventually(() => heard.confirmed >= 1027, 'the held patterns confirmed again');
    expect(heard.refused).toBe(5);
    expect(heard.confirmed).toBe(1027);
    expect(heard.text).toContain(
      '-ERR PSUBSCRIBE refused: the session would hold more than 1024 pub/sub patterns (limits.maxPubSubPatterns)',
    );
    expect(heard.text).toContain('raise maxPubSubPatterns in spec.agent.limits');
    expect(await limitCount(fx.agent, 'maxPubSubPatterns')).toBe(before + 5);
    // The server answers, and no connection of it ever got more than the bound.
    expect(await mostPatternsHeld(mode)).toBe(1024);
    // The session goes on: a message on a held pattern arrives.
    await fx.cli('alice', ['PUBLISH', 'pat:0:7:news', 'still-listening']);
    await eventually(() => heard.text.includes('still-listening'), 'the message');
    expect(heard.text).toContain('pat:0:7:news');
    // PUNSUBSCRIBE makes room again.
    alice.write(resp('PUNSUBSCRIBE', ...patterns(0, 10)));
    alice.write(resp('PSUBSCRIBE', ...patterns(6, 10)));
    await eventually(() => heard.confirmed >= 1037 || heard.refused > 5, 'the patterns after PUNSUBSCRIBE');
    expect(heard.refused).toBe(5);
    alice.destroy();
  });
});

describe('standalone', () => {
  it('a PSUBSCRIBE of more than 16 MiB of pattern names is refused (the agent would keep them)', async () => {
    const alice = await f.raw('alice');
    const heard = listen(alice);
    alice.write(resp('PSUBSCRIBE', 'x'.repeat(9 * 1024 * 1024), 'y'.repeat(9 * 1024 * 1024)));
    await eventually(() => heard.refused > 0 || heard.confirmed > 0, 'the refusal');
    expect(heard.refused).toBe(1);
    expect(heard.text).toContain('or 16777216 bytes of their names');
    alice.destroy();
  });

  it('spec.limits.maxPubSubPatterns: 2 refuses a third pattern; RESET clears the count', async () => {
    const agent = await f.startAgent(redisDocs(f.redis), { limits: { maxPubSubPatterns: 2 } });
    const alice = await f.rawAt(agent.port, 'alice');
    const heard = listen(alice);
    alice.write(resp('PSUBSCRIBE', 'a*', 'b*'));
    alice.write(resp('PSUBSCRIBE', 'c*'));
    await eventually(() => heard.refused > 0, 'the refusal');
    expect(heard.confirmed).toBe(2);
    expect(heard.text).toContain('more than 2 pub/sub patterns');
    alice.write(resp('RESET'));
    alice.write(resp('PSUBSCRIBE', 'c*', 'd*'));
    await eventually(() => heard.confirmed >= 4 || heard.refused > 1, 'the patterns after RESET');
    expect(heard.refused).toBe(1);
    alice.destroy();
  });
});
