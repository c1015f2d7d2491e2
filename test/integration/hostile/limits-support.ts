// What the hostile limit suites share: raw TLS clients (with or without a certificate), streaming a
// payload until the agent hangs up, the agent's memory while an attack runs, and its limit metrics.
// The agent runs in this test process, so process.memoryUsage() is the agent's (plus the test's own
// few reused buffers).
import { type Socket, connect as tcpConnect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { expect } from 'vitest';
import type { LimitName } from '../../../src/agent/limits.js';
import type { TestAgent } from '../../support/agent.js';

export const MB = 1024 * 1024;

export interface Credentials {
  ca: string;
  cert?: string;
  key?: string;
}

/** A TLS connection to the agent; without cert/key it is the stranger with no certificate. */
export function tlsClient(port: number, who: Credentials): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ...who }, () => resolve(s));
    s.once('error', reject);
  });
}

export function tcpClient(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Everything the peer sends until it closes the connection (or `ms` pass: then what came so far). */
export function received(s: Socket, ms = 15_000): Promise<{ text: string; closed: boolean; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    let text = '';
    const done = (closed: boolean) => {
      clearTimeout(timer);
      resolve({ text, closed, ms: Date.now() - started });
    };
    const timer = setTimeout(() => done(false), ms);
    s.on('data', (d: Buffer) => (text += d.toString('latin1')));
    s.on('error', () => undefined);
    s.once('close', () => done(true));
  });
}

/**
 * Sends `head`, then `chunk` (64 KB of zeros) again and again until `total` bytes went out or the peer
 * hung up. Resolves to how many bytes the socket took before the connection ended (one buffer, reused:
 * no memory of ours).
 */
export async function streamUntilClosed(
  s: Socket,
  head: Buffer,
  total: number,
  chunk = Buffer.alloc(64 * 1024),
): Promise<number> {
  let closed = false;
  s.once('close', () => (closed = true));
  s.on('error', () => undefined);
  let sent = 0;
  s.write(head);
  while (!closed && sent < total) {
    sent += chunk.length;
    if (!s.write(chunk)) {
      await Promise.race([new Promise((r) => s.once('drain', r)), new Promise((r) => s.once('close', r))]);
    }
  }
  return sent;
}

/**
 * Runs `attack` while sampling this process's memory every 20 ms; resolves to its result and the
 * peak growth of RSS and of Buffer memory (arrayBuffers) over the baseline taken before it.
 */
export async function peakGrowth<T>(
  attack: () => Promise<T>,
): Promise<{ result: T; rss: number; buffers: number }> {
  const base = process.memoryUsage();
  let rss = 0;
  let buffers = 0;
  const sample = () => {
    const m = process.memoryUsage();
    rss = Math.max(rss, m.rss - base.rss);
    buffers = Math.max(buffers, m.arrayBuffers - base.arrayBuffers);
  };
  const timer = setInterval(sample, 20);
  try {
    const result = await attack();
    sample();
    return { result, rss, buffers };
  } finally {
    clearInterval(timer);
  }
}

/** How often the agent counted `limit` in drawbridge_limit_exceeded_total. */
export async function limitCount(agent: TestAgent, limit: LimitName): Promise<number> {
  const metric = await agent.running.agent.metrics.limitExceeded.get();
  return metric.values.find((v) => v.labels.limit === limit)?.value ?? 0;
}

/** The documents with `limits` set in the Database's spec.agent (as in cluster). */
export function withLimits(docs: object[], limits: object): object[] {
  return docs.map((d) => {
    const doc = d as { kind?: string; spec?: Record<string, unknown> };
    if (doc.kind !== 'Database') return d;
    return { ...doc, spec: { ...doc.spec, agent: { ...(doc.spec?.agent as object), limits } } };
  });
}

/** Waits until `check` holds (polling), or fails with `what` after `ms`. */
export async function eventually(check: () => Promise<boolean> | boolean, what: string, ms = 15_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** A RESP command. */
export const resp = (...args: (string | Buffer)[]) =>
  Buffer.concat([
    Buffer.from(`*${args.length}\r\n`),
    ...args.flatMap((a) => [
      Buffer.from(`$${Buffer.byteLength(a)}\r\n`),
      Buffer.from(a),
      Buffer.from('\r\n'),
    ]),
  ]);

/** Sends one Redis command and waits (10 s at most) until what came back includes `reply`. */
export async function command(s: Socket, reply: string, ...args: string[]): Promise<void> {
  const got = new Promise<string>((resolve) => {
    let text = '';
    const done = () => {
      clearTimeout(timer);
      s.off('data', on);
      resolve(text);
    };
    const on = (d: Buffer) => {
      text += d.toString('latin1');
      if (text.includes(reply)) done();
    };
    const timer = setTimeout(done, 10_000);
    s.on('data', on);
  });
  s.write(resp(...args));
  expect(await got).toContain(reply);
}

/**
 * SUBSCRIBEs `s` to `channel` (in RESP3 after HELLO 3 when `protocol` is 3: messages are then pushes),
 * then stops reading it: the subscriber the output limit is for.
 */
export async function subscribeDeaf(s: Socket, channel: string, protocol: 2 | 3 = 2): Promise<void> {
  if (protocol === 3) await command(s, '$5\r\nproto\r\n:3\r\n', 'HELLO', '3');
  const kind = protocol === 3 ? '>' : '*';
  await command(
    s,
    `${kind}3\r\n$9\r\nsubscribe\r\n$${channel.length}\r\n${channel}\r\n:1\r\n`,
    'SUBSCRIBE',
    channel,
  );
  s.pause();
}

/**
 * On a connection straight to a Redis server: AUTH as `login`, then PUBLISH `count` messages of `size`
 * bytes on `channel` (one reused payload buffer, with backpressure), wait for them all, and close.
 */
export async function publishFlood(
  s: Socket,
  login: [string, string],
  channel: string,
  count: number,
  size: number,
): Promise<void> {
  s.on('data', () => undefined);
  s.write(resp('AUTH', ...login));
  const head = Buffer.from(`*3\r\n$7\r\nPUBLISH\r\n$${channel.length}\r\n${channel}\r\n$${size}\r\n`);
  const payload = Buffer.alloc(size, 'm');
  for (let i = 0; i < count; i++) {
    s.write(head);
    s.write(payload);
    if (!s.write('\r\n')) await new Promise((r) => s.once('drain', r));
  }
  await command(s, '+PONG', 'PING');
  s.destroy();
}
