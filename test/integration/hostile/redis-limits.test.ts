// Hostile clients against the agent's limits, Redis side: a real Redis 7 behind the real agent. The
// stranger has no certificate; the insider has one. Neither may make the agent buffer what it sends
// or what it is sent, hold connections without bound, or sit unauthenticated.
import { setTimeout as sleep } from 'node:timers/promises';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestAgent } from '../../support/agent.js';
import { type PersonName, type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import {
  MB,
  command,
  eventually,
  limitCount,
  peakGrowth,
  publishFlood,
  received,
  resp,
  streamUntilClosed,
  subscribeDeaf,
  tcpClient,
  tlsClient,
  withLimits,
} from './limits-support.js';

let f: RedisFixture;
/** An agent with small limits, so each can be reached quickly. */
let tight: TestAgent;

const TIGHT = {
  maxConnections: 6,
  maxConnectionsPerIdentity: 2,
  authTimeout: '2s',
  maxRequestBytes: '1Mi',
  outputBuffer: { maxBytes: '8Mi', stallTimeout: '2s' },
};

const stranger = (port: number) => tlsClient(port, { ca: f.ca.certPem });
const person = (port: number, p: PersonName) =>
  tlsClient(port, { ca: f.ca.certPem, cert: f.people[p].certPem, key: f.people[p].keyPem });

async function connectionsOpen(agent: TestAgent): Promise<number> {
  const m = await agent.running.agent.metrics.connections.get();
  return m.values.reduce((n, v) => n + v.value, 0);
}

beforeAll(async () => {
  f = await startRedisFixture();
  tight = await f.startAgent(withLimits(redisDocs(f.redis), TIGHT));
});

afterAll(async () => {
  await f?.stop();
});

describe('before authentication (Redis’s own unauthenticated limits)', () => {
  it('the stranger streaming a 512 MB bulk is cut off at its header; the agent buffers none of it', async () => {
    const s = await stranger(f.agent.port);
    const reply = received(s);
    const {
      result: sent,
      rss,
      buffers,
    } = await peakGrowth(() => streamUntilClosed(s, Buffer.from('*1\r\n$536870000\r\n'), 200 * MB));
    const r = await reply;
    expect(r.text).toMatch(/^-ERR Protocol error: unauthenticated bulk length/);
    expect(r.closed).toBe(true);
    // What loopback socket buffers took before the close; not the 200 MB.
    expect(sent).toBeLessThan(32 * MB);
    expect(buffers).toBeLessThan(16 * MB);
    expect(rss).toBeLessThan(64 * MB);
    expect(await limitCount(f.agent, 'unauthenticatedRequest')).toBeGreaterThanOrEqual(1);
  });

  it('more than 10 arguments, or a 16 KB+ inline line, end the stranger’s connection', async () => {
    for (const [input, error] of [
      ['*11\r\n', 'unauthenticated multibulk length'],
      ['x'.repeat(20_000), 'too big inline request'],
    ]) {
      const s = await stranger(f.agent.port);
      const reply = received(s);
      s.write(input!);
      const r = await reply;
      expect(r.text).toContain(`-ERR Protocol error: ${error}`);
      expect(r.closed).toBe(true);
    }
  });

  it('a stranger is answered NOAUTH, then closed at the auth deadline; a certificate holder is not', async () => {
    const s = await stranger(tight.port);
    const reply = received(s);
    s.write(resp('PING'));
    const alice = await person(tight.port, 'alice');
    const r = await reply;
    expect(r.text).toMatch(/^-NOAUTH Authentication required/);
    expect(r.text).toContain('-ERR no successful AUTH within 2000 ms of connecting (limits.authTimeout)');
    expect(r.closed).toBe(true);
    expect(r.ms).toBeGreaterThan(1500);
    expect(r.ms).toBeLessThan(8000);
    // alice authenticated with her certificate when she connected: still served past the deadline.
    await command(alice, '+PONG', 'PING');
    alice.destroy();
    expect(await limitCount(tight, 'authTimeout')).toBeGreaterThanOrEqual(1);
  });

  it('a connection that never even starts TLS is closed at the auth deadline', async () => {
    const s = await tcpClient(tight.port);
    const r = await received(s);
    expect(r.closed).toBe(true);
    expect(r.ms).toBeLessThan(8000);
  });
});

describe('after login', () => {
  it('commands up to maxRequestBytes go through; a larger bulk ends the session at its header', async () => {
    const alice = await person(tight.port, 'alice');
    await command(alice, '+OK', 'SET', 'hostile:big', 'v'.repeat(900 * 1024));
    const reply = received(alice);
    const { result: sent, buffers } = await peakGrowth(() =>
      streamUntilClosed(alice, Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n'), 100 * MB),
    );
    const r = await reply;
    expect(r.text).toMatch(/^-ERR Protocol error: invalid bulk length/);
    expect(r.closed).toBe(true);
    expect(sent).toBeLessThan(32 * MB);
    expect(buffers).toBeLessThan(16 * MB);
    expect(await limitCount(tight, 'maxRequestBytes')).toBeGreaterThanOrEqual(1);
    expect((await f.redis.cli(['STRLEN', 'hostile:big'])).trim()).toBe(String(900 * 1024));
  });

  it('the default maxRequestBytes (128Mi) stops a certificate holder’s 512 MB bulk too', async () => {
    const alice = await person(f.agent.port, 'alice');
    const reply = received(alice);
    const { result: sent } = await peakGrowth(() =>
      streamUntilClosed(alice, Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870000\r\n'), 200 * MB),
    );
    expect((await reply).text).toMatch(/^-ERR Protocol error: invalid bulk length/);
    expect(sent).toBeLessThan(32 * MB);
  });
});

describe('connection limits', () => {
  it('maxConnectionsPerIdentity: alice’s third connection is refused, naming the limit; others are not', async () => {
    const [a1, a2] = [await person(tight.port, 'alice'), await person(tight.port, 'alice')];
    await command(a1, '+PONG', 'PING');
    await command(a2, '+PONG', 'PING');
    const a3 = await person(tight.port, 'alice');
    const r = await received(a3);
    expect(r.text).toContain(
      '"alice" already has 2 connections to this agent (limits.maxConnectionsPerIdentity)',
    );
    expect(r.closed).toBe(true);
    const ops = await person(tight.port, 'ops');
    await command(ops, '+PONG', 'PING');
    // A slot comes back when a connection ends.
    a1.destroy();
    await sleep(200);
    const again = await person(tight.port, 'alice');
    await command(again, '+PONG', 'PING');
    for (const s of [a2, ops, again]) s.destroy();
    expect(await limitCount(tight, 'maxConnectionsPerIdentity')).toBeGreaterThanOrEqual(1);
  });

  it('the AgentConfig’s limits win over the Database’s, field by field', async () => {
    const agent = await f.startAgent(withLimits(redisDocs(f.redis), TIGHT), {
      limits: { maxConnectionsPerIdentity: 1 },
    });
    try {
      const first = await person(agent.port, 'alice');
      await command(first, '+PONG', 'PING');
      const second = await person(agent.port, 'alice');
      expect((await received(second)).text).toContain('"alice" already has 1 connections');
      // The Database's other limits still apply (maxRequestBytes 1Mi).
      const reply = received(first);
      first.write('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n');
      expect((await reply).text).toMatch(/^-ERR Protocol error: invalid bulk length/);
    } finally {
      await agent.stop();
    }
  });

  it('maxConnections: strangers holding every slot give theirs, oldest first, to people who connect', async () => {
    const strangersClosed = async () =>
      (await tight.running.agent.metrics.strangersClosed.get()).values.reduce((n, v) => n + v.value, 0);
    await eventually(async () => (await connectionsOpen(tight)) === 0, 'earlier connections to close');
    const before = await strangersClosed();
    // Six strangers that never say a word hold every slot (reopened at each auth deadline, forever).
    const idle: Socket[] = [];
    for (let i = 0; i < TIGHT.maxConnections; i++) idle.push(await tcpClient(tight.port));
    const oldestGone = new Promise<void>((resolve) => idle[0]!.once('close', () => resolve()));
    await eventually(async () => (await connectionsOpen(tight)) === idle.length, 'the agent to count them');
    const ops = await person(tight.port, 'ops');
    await command(ops, '+PONG', 'PING');
    await oldestGone;
    expect(idle.slice(1).every((s) => !s.destroyed)).toBe(true);
    idle.forEach((s) => s.destroy());
    await eventually(async () => (await connectionsOpen(tight)) === 1, 'the strangers to go');
    // Held by a person, a slot is not given up: a second session of ops closes no session.
    const again = await person(tight.port, 'ops');
    await command(again, '+PONG', 'PING');
    await command(ops, '+PONG', 'PING');
    for (const s of [ops, again]) s.destroy();
    await eventually(async () => (await connectionsOpen(tight)) === 0, 'the sessions to close');
    expect((await strangersClosed()) - before).toBe(1);
  });
});

describe('output the client does not read', () => {
  /** Publishes straight to Redis, as admin. */
  async function publish(channel: string, count: number, size: number): Promise<void> {
    const s = await tcpClient(f.redis.plainPort);
    await publishFlood(s, ['admin', 'admin-pw'], channel, count, size);
  }

  async function subscribedAndDeaf(
    agentPort: number,
    channel: string,
    protocol: 2 | 3 = 2,
  ): Promise<TLSSocket> {
    const s = await person(agentPort, 'alice');
    await subscribeDeaf(s, channel, protocol);
    return s;
  }

  beforeAll(async () => {
    // Redis keeps whatever the agent does not read: only the agent's own limit can end the subscriber.
    await f.redis.cli(['CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 0 0 0']);
  });
  afterAll(async () => {
    await f.redis.cli(['CONFIG', 'SET', 'client-output-buffer-limit', 'pubsub 32mb 8mb 60']);
  });

  // RESP3: the messages are pushes, relayed out of band; the same limit holds them.
  it.each([2, 3] as const)(
    'a RESP%i subscriber that never reads while 200 MB are published is disconnected; memory stays bounded',
    async (protocol) => {
      const before = await limitCount(tight, 'outputBuffer');
      const s = await subscribedAndDeaf(tight.port, `firehose${protocol}`, protocol);
      const { buffers, rss } = await peakGrowth(async () => {
        await publish(`firehose${protocol}`, 200, MB);
        await eventually(async () => (await limitCount(tight, 'outputBuffer')) > before, 'the disconnect');
      });
      // The agent holds at most its socket buffers and one message for the subscriber, not 200 MB.
      expect(buffers).toBeLessThan(48 * MB);
      expect(rss).toBeLessThan(128 * MB);
      let reason = '';
      await eventually(async () => {
        const end = (await tight.auditEvents()).find(
          (e) => e.type === 'session.end' && String(e.reason).includes('not reading'),
        );
        reason = String(end?.reason ?? '');
        return end !== undefined;
      }, 'the session.end audit event');
      expect(reason).toMatch(/not reading its pub\/sub messages: .*\(limits\.outputBuffer\)/);
      s.resume();
      expect((await received(s)).closed).toBe(true);
    },
  );

  it('a subscriber that reads slowly is not disconnected, and gets every message in order', async () => {
    const s = await subscribedAndDeaf(tight.port, 'trickle');
    s.resume();
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    await publish('trickle', 50, 64 * 1024);
    await eventually(() => (text.match(/\$7\r\nmessage\r\n/g)?.length ?? 0) === 50, 'all 50 messages');
    expect(s.destroyed).toBe(false);
    s.destroy();
  });
});
