// AUTH pipelined with what follows it, as node-redis and ioredis send commands queued before connect:
// a real Redis 7 behind the real agent, the client without a certificate logging in with a token. The
// rest of the write is parsed once the AUTH is decided, with the limits of its outcome: a logged-in
// client's large command goes through, a stranger's is still refused at its header, and nothing past
// the AUTH is read from the socket while it is being decided.
import { once } from 'node:events';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Identity, TokenVerifier } from '../../../src/authn/identity.js';
import { DrawbridgeError } from '../../../src/errors.js';
import type { TestAgent } from '../../support/agent.js';
import { type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { MB, peakGrowth, received, resp, streamUntilClosed, tlsClient } from './limits-support.js';

const TOKEN = `${'a'.repeat(20)}.${'b'.repeat(30)}.${'c'.repeat(20)}`;
const WRONG = `${'x'.repeat(20)}.${'y'.repeat(30)}.${'z'.repeat(20)}`;
const alice: Identity = { user: 'alice', groups: [], source: 'token' };

let f: RedisFixture;
let agent: TestAgent;
/** While set, token checks wait for it: an AUTH being decided. */
let gate: Promise<void> | undefined;

const verifier: TokenVerifier = {
  async verify(token: string) {
    await gate;
    if (token !== TOKEN) throw new DrawbridgeError('AUTHN_FAILED', 'the token was not accepted');
    return alice;
  },
};

beforeAll(async () => {
  f = await startRedisFixture();
  agent = await f.startAgent(redisDocs(f.redis));
  // As in cluster, where the agent checks ServiceAccount tokens with a TokenReview.
  (agent.running.agent as { tokenVerifier?: TokenVerifier }).tokenVerifier = verifier;
});

afterAll(async () => {
  await f?.stop();
});

const stranger = () => tlsClient(agent.port, { ca: f.ca.certPem });

/** Everything received until `done` holds for it (or the connection closed, or 20 s passed). */
function replies(s: TLSSocket, done: (text: string) => boolean): Promise<string> {
  return new Promise((resolve) => {
    let text = '';
    const timer = setTimeout(() => resolve(text), 20_000);
    s.once('close', () => resolve(text));
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      if (done(text)) {
        clearTimeout(timer);
        resolve(text);
      }
    });
  });
}

describe('AUTH pipelined with a large command, in one write', () => {
  const value = 'v'.repeat(MB);
  const tail = `+OK\r\n$${MB}\r\n${value}\r\n`;

  it('RESP2: AUTH, SET of a 1 MB value and GET answer +OK, +OK and the value', async () => {
    const s = await stranger();
    const got = replies(s, (t) => t.length >= 5 + tail.length);
    s.write(
      Buffer.concat([resp('AUTH', 'default', TOKEN), resp('SET', 'pipe:2', value), resp('GET', 'pipe:2')]),
    );
    expect(await got).toBe(`+OK\r\n${tail}`);
    s.destroy();
  });

  it('HELLO 3 AUTH: the HELLO map, then +OK and the value', async () => {
    const s = await stranger();
    const got = replies(s, (t) => t.endsWith(tail));
    const hello = resp('HELLO', '3', 'AUTH', 'default', TOKEN);
    s.write(Buffer.concat([hello, resp('SET', 'pipe:3', value), resp('GET', 'pipe:3')]));
    const text = await got;
    expect(text).toMatch(/^%\d+\r\n/);
    expect(text.endsWith(tail)).toBe(true);
    s.destroy();
  });
});

describe('the stranger pipelining past AUTH', () => {
  it('a wrong AUTH, then a huge command: refused at its header, none of it buffered', async () => {
    const s = await stranger();
    const reply = received(s);
    const head = Buffer.concat([
      resp('AUTH', 'default', WRONG),
      Buffer.from('*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n'),
    ]);
    const { result: sent, buffers, rss } = await peakGrowth(() => streamUntilClosed(s, head, 100 * MB));
    const r = await reply;
    expect(r.text).toMatch(/^-\S+ .*the token was not accepted/);
    expect(r.text).toContain('-ERR Protocol error: unauthenticated bulk length');
    expect(r.closed).toBe(true);
    expect(sent).toBeLessThan(32 * MB);
    expect(buffers).toBeLessThan(16 * MB);
    expect(rss).toBeLessThan(64 * MB);
  });

  it('AUTH, then a 64 MB command: not read while the AUTH is decided, then stored', async () => {
    let open!: () => void;
    gate = new Promise((r) => (open = r));
    const s = await stranger();
    const got = replies(s, (t) => t.length >= 10 || t.startsWith('-'));
    const size = 64 * MB;
    let sent = 0;
    const chunk = Buffer.alloc(64 * 1024, 'w');
    const streaming = (async () => {
      s.write(
        Buffer.concat([
          resp('AUTH', 'default', TOKEN),
          Buffer.from(`*3\r\n$3\r\nSET\r\n$7\r\npipe:64\r\n$${size}\r\n`),
        ]),
      );
      for (; sent < size; sent += chunk.length) if (!s.write(chunk)) await once(s, 'drain');

      s.write('\r\n');
    })();
    const held = await peakGrowth(() => new Promise((r) => setTimeout(r, 1500)));
    // What the loopback socket buffers took; the agent read none of the rest.
    expect(sent).toBeLessThan(32 * MB);
    expect(held.buffers).toBeLessThan(16 * MB);
    open();
    gate = undefined;
    await streaming;
    expect(await got).toBe('+OK\r\n+OK\r\n');
    expect((await f.redis.cli(['STRLEN', 'pipe:64'])).trim()).toBe(String(size));
    s.destroy();
  });
});
