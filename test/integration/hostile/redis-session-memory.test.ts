// Hostile: an authenticated client, sending only commands its roles allow, must not make the agent
// keep per-session state that grows with what it sends: a deep pipeline whose replies it never reads,
// distinct pub/sub channels by the hundred thousand. A real Redis 7 and the 6-node TLS Redis Cluster
// behind the real agent (in this process: its heap is the agent's).
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterFixture, startClusterFixture } from '../redis/cluster-fixture.js';
import { type RedisFixture, startRedisFixture } from '../redis/fixture.js';
import { MB, eventually, limitCount, received, resp } from './limits-support.js';

// What the agent retains, not the garbage its parsing left: measured after a full collection.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapAfterGc = () => {
  gc();
  return process.memoryUsage().heapUsed;
};

let f: RedisFixture;
let cluster: ClusterFixture;
beforeAll(async () => {
  [f, cluster] = await Promise.all([startRedisFixture(), startClusterFixture()]);
}, 120_000);

// Stopping the agents closes the attackers' connections.
afterAll(() => Promise.all([f?.stop(), cluster?.stop()]));

/**
 * Writes `count` copies of `cmd` (in batches of 4,096, one reused buffer) without reading; stops early
 * when the socket takes nothing for `stallMs`. Resolves to how many went out.
 */
async function pipelineUnread(s: TLSSocket, cmd: Buffer, count: number, stallMs = 2000): Promise<number> {
  const batch = Buffer.concat(Array.from({ length: 4096 }, () => cmd));
  let sent = 0;
  while (sent < count) {
    sent += 4096;
    if (!s.write(batch)) {
      const drained = await Promise.race([
        new Promise<boolean>((r) => s.once('drain', () => r(true))),
        new Promise<boolean>((r) => setTimeout(() => r(false), stallMs)),
      ]);
      if (!drained) break;
    }
  }
  return sent;
}

describe('a pipeline whose replies the client does not read', () => {
  it('the agent stops reading it at 65,536 unanswered commands; its memory stays bounded; every reply comes once read', async () => {
    const alice = await f.raw('alice');
    alice.pause();
    const total = 2 * 1024 * 1024;
    const base = heapAfterGc();
    const sent = await pipelineUnread(alice, Buffer.from('*1\r\n$4\r\nPING\r\n'), total);
    const retained = heapAfterGc() - base;
    // ~50 bytes a command without the bound: 100 MB kept for these 2 Mi PINGs (28 MB sent).
    expect(retained).toBeLessThan(16 * MB);
    expect(sent).toBeLessThan(total);
    // Read now: every command sent is answered, in order, and the session goes on.
    let pongs = 0;
    let tail = '';
    alice.on('data', (d: Buffer) => {
      const text = tail + d.toString('latin1');
      pongs += text.split('+PONG\r\n').length - 1;
      tail = text.slice(text.lastIndexOf('\n') + 1);
    });
    alice.resume();
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (pongs >= sent) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    });
    expect(pongs).toBe(sent);
  });
});

// The agent keeps each subscription's name (standalone: pubsub-tracker.ts; cluster: cluster/pubsub.ts).
// Patterns have a lower bound of their own (redis-pubsub-patterns.test.ts).
const pad = 'c'.repeat(90);
const channel = (batch: number, i: number) => `${pad}:${batch}:${i}`;
describe.each([
  ['standalone', 'SUBSCRIBE', 10_000, channel],
  ['cluster', 'SSUBSCRIBE', 10_000, channel],
  ['cluster', 'SUBSCRIBE', 10_000, channel],
] as const)('%s: %s', (mode, verb, perBatch, nameOf) => {
  it('a session subscribing past 100,000 names or 16 MiB of them ends, naming the limit; the agent keeps none of them', async () => {
    const agent = mode === 'cluster' ? cluster.agent : f.agent;
    const alice = await (mode === 'cluster' ? cluster : f).raw('alice');
    const before = await limitCount(agent, 'subscriptions');
    const confirmation = `$${verb.length}\r\n${verb.toLowerCase()}\r\n`;
    let text = '';
    let confirmed = 0;
    let closed = false;
    alice.on('data', (d: Buffer) => {
      // A confirmation split across two reads is counted once: the carried tail is shorter than one.
      const seen = text.slice(-(confirmation.length - 1)) + d.toString('latin1');
      confirmed += seen.split(confirmation).length - 1;
      text = seen.slice(-4096);
    });
    alice.once('close', () => (closed = true));
    const base = heapAfterGc();
    for (let batch = 0; batch < 20 && !closed; batch++) {
      const names = Array.from({ length: perBatch }, (_, i) => nameOf(batch, i));
      alice.write(resp(verb, ...names));
      const want = (batch + 1) * perBatch;
      await eventually(() => closed || confirmed >= want, `batch ${batch}'s confirmations`, 60_000);
    }
    await eventually(() => closed, 'the session to end');
    expect(text).toMatch(/more than 100000 subscriptions .*\(Redis pub\/sub\)/);
    expect(confirmed).toBeLessThanOrEqual(100_000);
    expect(await limitCount(agent, 'subscriptions')).toBe(before + 1);
    // The ended session's subscriptions are freed (only what its close leaves for a moment remains).
    await eventually(() => heapAfterGc() - base < 8 * MB, 'its memory to be freed');
  });
});

describe('cluster: one SSUBSCRIBE of 120,000 channels of one slot', () => {
  it('is handled in one pass: the agent (this process) goes on serving; the session ends at the bound', async () => {
    const alice = await cluster.raw('alice');
    const got = received(alice, 60_000);
    const names = Array.from({ length: 120_000 }, (_, i) => `{one-slot}:${i}`);
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    // Built here: a spread of 120,000 arguments would overflow the stack.
    alice.write(`*${names.length + 1}\r\n$10\r\nSSUBSCRIBE\r\n`);
    alice.write(names.map((n) => `$${n.length}\r\n${n}\r\n`).join(''));
    const r = await got;
    delay.disable();
    expect(r.text).toMatch(/more than 100000 subscriptions/);
    // Grouping the names by slot copied the group per name (O(N²)): the worker, every session on it,
    // stood still for tens of seconds. A liveness bound, far above what one pass takes.
    expect(delay.max / 1e6).toBeLessThan(5000);
  });
});

describe('cluster: a MULTI of a million commands', () => {
  it('is discarded once 64 MiB are queued in the agent, naming the bound; EXEC answers EXECABORT', async () => {
    const alice = await cluster.raw('alice');
    let text = '';
    let replies = 0;
    let refused = '';
    alice.on('data', (d: Buffer) => {
      const seen = text.slice(-8) + d.toString('latin1');
      replies += seen.split('+QUEUED\r\n').length - 1;
      text = seen.slice(-4096);
      refused ||= /-ERR[^\r]*/.exec(seen)?.[0] ?? '';
    });
    alice.write(resp('MULTI'));
    const base = heapAfterGc();
    // Keyless PINGs: the agent answers QUEUED itself until a keyed command pins the transaction.
    const batch = Buffer.concat(Array.from({ length: 8192 }, () => resp('PING')));
    for (let sent = 8192; sent <= 1_200_000 && refused === ''; sent += 8192) {
      alice.write(batch);
      await eventually(() => refused !== '' || replies >= sent, 'the QUEUED replies', 60_000);
    }
    expect(refused).toMatch(/queues at most 67108864 bytes of commands in the agent/);
    expect(heapAfterGc() - base).toBeLessThan(16 * MB);
    text = '';
    alice.write(resp('EXEC'));
    await eventually(() => text.includes('EXECABORT'), 'EXECABORT');
    alice.destroy();
  });
});
