// Commands that fill a node connection, through the agent in front of the real 6-node TLS + ACL Redis
// Cluster. A write past 256 KB (or onto a socket not drained yet) says "full": the session stops
// reading its client until the agent is told that connection drained, and only the path that wrote
// can ask to be told. The pub/sub path (SUBSCRIBE/PSUBSCRIBE and their unsubscribes, ~170 KB for
// 10,000 channels), transactions and fan-outs never asked: the client waited forever (the known bug:
// SUBSCRIBE of 10,000 channels per command unanswered from the third, in RESP2 and RESP3).
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCommand } from '../../../src/engines/redis/serializer.js';
import { eventually, withLimits } from '../hostile/limits-support.js';
import { type ClusterFixture, clusterDocs, startClusterFixture } from './cluster-fixture.js';

let f: ClusterFixture;
beforeAll(async () => {
  // 10,000 patterns, past the default limits.maxPubSubPatterns: this suite fills connections.
  f = await startClusterFixture(undefined, (c) => withLimits(clusterDocs(c), { maxPubSubPatterns: 10_000 }));
}, 120_000);

afterAll(() => f?.stop());

/** Counts occurrences of `marker` in what a socket receives (one split across reads counted once). */
class Tally {
  count = 0;
  private tail = '';
  constructor(
    socket: TLSSocket,
    private readonly marker: string,
  ) {
    socket.on('data', (d: Buffer) => {
      const seen = this.tail + d.toString('latin1');
      this.count += seen.split(marker).length - 1;
      this.tail = seen.slice(-(marker.length - 1));
    });
  }

  /** Resolves once `n` have arrived in all. */
  async reach(n: number, what: string): Promise<void> {
    await eventually(() => this.count >= n, what, 30_000).catch(() => {
      throw new Error(`${what}: ${this.count} of ${n} came`);
    });
  }
}

const bulk = (s: string) => `$${s.length}\r\n${s}\r\n`;
const BATCHES = 5;

/**
 * `count` names of one command, ~170-220 KB in all. Patterns are fewer and longer: Redis 7.0 keeps a
 * client's patterns in a list, searched per PSUBSCRIBE/PUNSUBSCRIBE name (5 × 10,000 take Redis alone a
 * minute); they differ in their first bytes, so each comparison ends there.
 */
const namesOf = (tag: string, batch: number, count: number) =>
  Array.from({ length: count }, (_, i) =>
    count === 10_000 ? `${tag}:${batch}:${i}` : `${i}:${batch}:${tag}:${'p'.repeat(80)}`,
  );

describe.each([
  ['SUBSCRIBE', 2, 'UNSUBSCRIBE', 10_000],
  ['PSUBSCRIBE', 2, 'PUNSUBSCRIBE', 2_000],
  ['SUBSCRIBE', 3, 'UNSUBSCRIBE', 10_000],
  ['PSUBSCRIBE', 3, 'PUNSUBSCRIBE', 2_000],
] as const)('%s, 5 pipelined (RESP%i)', (verb, protocol, unverb, count) => {
  it(`${count} names each: every name is confirmed, a message arrives, unsubscribing confirms them all; another session is answered throughout`, async () => {
    const tag = `${verb}${protocol}`.toLowerCase();
    const all = BATCHES * count;
    const sub = await f.raw('alice');
    if (protocol === 3) {
      sub.write(encodeCommand(['HELLO', '3']));
      await new Tally(sub, 'proto').reach(1, 'HELLO replies');
    }
    const confirmed = new Tally(sub, bulk(verb.toLowerCase()));
    const unconfirmed = new Tally(sub, bulk(unverb.toLowerCase()));
    // Counts follow a CRLF; a name's last digits follow its own bytes.
    const total = new Tally(sub, `\r\n:${all}\r\n`);
    const none = new Tally(sub, '\r\n:0\r\n');
    const message = new Tally(sub, bulk(verb === 'SUBSCRIBE' ? 'message' : 'pmessage'));
    // Another session of the agent, reading a key while the first one floods.
    const other = f.ioredis('ops');
    await other.set(`{${tag}}k`, 'v');
    let gets = 0;
    let reading = true;
    const readLoop = (async () => {
      while (reading) {
        expect(await other.get(`{${tag}}k`)).toBe('v');
        gets++;
      }
    })();
    // Pipelined, as a client library does (ioredis sends without waiting): the first ones wait in
    // the subscriber connection being opened, a later one finds its socket full.
    for (let b = 0; b < BATCHES; b++) sub.write(encodeCommand([verb, ...namesOf(tag, b, count)]));
    try {
      await confirmed.reach(all, 'confirmations');
    } finally {
      reading = false;
      await readLoop;
    }
    expect(gets).toBeGreaterThan(0);
    expect(confirmed.count).toBe(all);
    // The last confirmation counts every subscription of the session.
    expect(total.count).toBe(1);
    const channel = namesOf(tag, BATCHES - 1, count)[count - 1]!;
    expect((await f.cli('ops', ['PUBLISH', channel, 'hello'])).trim()).toBe('1');
    await message.reach(1, 'messages');
    // Two by name, pipelined on the connected subscriber connection, then the rest by one bare
    // unsubscribe (the agent names them all: one command of 3/5 of the bytes).
    sub.write(encodeCommand([unverb, ...namesOf(tag, 0, count)]));
    sub.write(encodeCommand([unverb, ...namesOf(tag, 1, count)]));
    await unconfirmed.reach(2 * count, 'unsubscribe confirmations by name');
    sub.write(encodeCommand([unverb]));
    await unconfirmed.reach(all, 'unsubscribe confirmations');
    expect(none.count).toBe(1);
    // Unsubscribed from everything, and read again: the session answers a plain command.
    const pong = new Tally(sub, '+PONG');
    sub.write(encodeCommand(['PING']));
    await pong.reach(1, 'PONG');
    sub.destroy();
  });
});

// One command past 256 KB fills a node connection's batch by itself: the session stops reading its
// client until that connection drains, which only the path that wrote can ask to be told of.
describe('a command of 300 KB in a transaction or to every master', () => {
  const big = 'v'.repeat(300 * 1024);
  // Each command with the lines of its reply: +OK, +QUEUED, *1 +OK; $40 sha.
  it.each([
    [
      'MULTI/EXEC',
      [
        [['MULTI'], 1],
        [['SET', '{bp}tx', big], 1],
        [['EXEC'], 2],
      ],
    ],
    ['a fan-out (SCRIPT LOAD on every master)', [[['SCRIPT', 'LOAD', `return '${big}'`], 2]]],
  ] as const)('%s: answered, and the session reads on', async (_what, commands) => {
    const s = await f.raw('ops');
    const lines = new Tally(s, '\r\n');
    let want = 0;
    // One at a time, as an interactive client sends them; twice: the second time, the node connection
    // a transaction takes is connected already (given back idle).
    for (let round = 1; round <= 2; round++) {
      for (const [command, replyLines] of commands) {
        s.write(encodeCommand([...command]));
        await lines.reach((want += replyLines), `the reply to ${command[0]} (round ${round})`);
      }
    }
    s.destroy();
  });
});
