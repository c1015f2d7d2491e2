// The standalone router's reply accounting, with the backend socket faked as a Duplex (the real
// backend is exercised by the integration suites): one frame per command, one per channel for
// SUBSCRIBE-family commands, pushes in subscribed and MONITOR modes, RESET, and re-login order.
import type { Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { RequestParser, type RedisCommand } from '../../../src/engines/redis/parser.js';
import type { Database } from '../../../src/api/database.js';
import type { BackendLogin } from '../../../src/engines/redis/router.js';
import { StandaloneRouter } from '../../../src/engines/redis/standalone-router.js';
import { createLogger } from '../../../src/log.js';

class FakeBackend extends Duplex {
  written = '';
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.written += chunk.toString();
    cb();
  }
  override _read(): void {}
  reply(text: string): void {
    this.push(Buffer.from(text));
  }
}

function setup() {
  const backend = new FakeBackend();
  const router = new StandaloneRouter(
    backend as unknown as Socket,
    createLogger('unit', 'silent'),
    'default',
  );
  const replies: string[] = [];
  const pushes: string[] = [];
  router.onPush((f) => pushes.push(f.toString()));
  const send = (line: string) => {
    const cmds: RedisCommand[] = [];
    new RequestParser((c) => cmds.push(c)).feed(Buffer.from(`${line}\r\n`));
    router.dispatch(cmds[0]!, (r) => replies.push(Buffer.isBuffer(r) ? r.toString() : `router:${r.message}`));
  };
  return { backend, router, replies, pushes, send };
}

const tick = () => new Promise((r) => setImmediate(r));
const sub = (kind: string, name: string | null, n: number) =>
  `*3\r\n$${kind.length}\r\n${kind}\r\n${name === null ? '$-1' : `$${name.length}\r\n${name}`}\r\n:${n}\r\n`;
const message = (ch: string, msg: string) =>
  `*3\r\n$7\r\nmessage\r\n$${ch.length}\r\n${ch}\r\n$${msg.length}\r\n${msg}\r\n`;

describe('StandaloneRouter', () => {
  it('pipelines commands as their raw bytes and matches replies in order', async () => {
    const { backend, replies, send } = setup();
    send('SET a 1');
    send('GET a');
    await tick();
    expect(backend.written).toBe('*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n*2\r\n$3\r\nGET\r\n$1\r\na\r\n');
    backend.reply('+OK\r\n$1\r\n1\r\n');
    await tick();
    expect(replies).toEqual(['+OK\r\n', '$1\r\n1\r\n']);
  });

  it("hands a session's replies over in place, pushes and attributed replies as frames", async () => {
    const { backend, router, pushes } = setup();
    const bySeq: string[] = [];
    router.onReply((seq, reply, start, end) => (bySeq[seq] = reply.toString('latin1', start, end)));
    const chunk = Buffer.from('*2\r\n$3\r\nGET\r\n$1\r\na\r\n'.repeat(4));
    new RequestParser((c) => router.dispatchSeq(c, bySeq.push('') - 1)).feed(chunk);
    await tick();
    expect(backend.written).toBe(chunk.toString()); // the client's bytes as they came
    const attributed = '|1\r\n+ttl\r\n:3\r\n$1\r\nz\r\n';
    const invalidate = '>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\na\r\n';
    backend.reply(`$1\r\nx\r\n${invalidate}:5\r\n${attributed}`);
    backend.reply('-ERR no\r\n');
    await tick();
    expect(bySeq).toEqual(['$1\r\nx\r\n', ':5\r\n', attributed, '-ERR no\r\n']);
    expect(pushes).toEqual([invalidate]);
  });

  it('matches 10,000 pipelined replies, read in pieces, to their commands, then a reply to none ends it', async () => {
    const { backend, router } = setup();
    const bySeq: string[] = [];
    let failed = '';
    router.onReply((seq, reply, start, end) => (bySeq[seq] = reply.toString('latin1', start, end)));
    router.onFailure((err) => (failed = err.message));
    const n = 10_000;
    const chunk = Buffer.from('*2\r\n$3\r\nGET\r\n$1\r\na\r\n'.repeat(n));
    new RequestParser((c) => router.dispatchSeq(c, bySeq.push('') - 1)).feed(chunk);
    const replies = Array.from({ length: n }, (_, i) => `:${i}\r\n`).join('');
    for (let i = 0; i < replies.length; i += 4099) backend.reply(replies.slice(i, i + 4099));
    await tick();
    expect(bySeq).toEqual(Array.from({ length: n }, (_, i) => `:${i}\r\n`));
    expect(failed).toBe('');
    backend.reply(':0\r\n');
    await tick();
    expect(failed).toContain('a reply to no command');
  });

  it('SUBSCRIBE a b gets both frames as one reply; messages are pushes; argument-less UNSUBSCRIBE counts channels', async () => {
    const { backend, replies, pushes, send } = setup();
    send('SUBSCRIBE a b');
    backend.reply(sub('subscribe', 'a', 1));
    backend.reply(message('a', 'early') + sub('subscribe', 'b', 2));
    await tick();
    expect(replies).toEqual([sub('subscribe', 'a', 1) + sub('subscribe', 'b', 2)]);
    expect(pushes).toEqual([message('a', 'early')]);
    send('PING');
    backend.reply('*2\r\n$4\r\npong\r\n$0\r\n\r\n');
    send('UNSUBSCRIBE');
    backend.reply(sub('unsubscribe', 'b', 1) + sub('unsubscribe', 'a', 0));
    send('GET x'); // normal mode again: an array reply is not a push any more
    backend.reply(message('looks', 'like-a-push'));
    await tick();
    expect(replies.slice(1)).toEqual([
      '*2\r\n$4\r\npong\r\n$0\r\n\r\n',
      sub('unsubscribe', 'b', 1) + sub('unsubscribe', 'a', 0),
      message('looks', 'like-a-push'),
    ]);
  });

  it('an error answers a whole SUBSCRIBE; UNSUBSCRIBE with nothing subscribed gets one frame', async () => {
    const { backend, replies, send } = setup();
    send('SUBSCRIBE a b c');
    backend.reply('-NOPERM no channel access\r\n');
    send('UNSUBSCRIBE');
    backend.reply(sub('unsubscribe', null, 0));
    await tick();
    expect(replies).toEqual(['-NOPERM no channel access\r\n', sub('unsubscribe', null, 0)]);
  });

  it('after MONITOR +OK every frame is a push, until RESET', async () => {
    const { backend, replies, pushes, send } = setup();
    send('MONITOR');
    backend.reply('+OK\r\n+1700000000.1 [0 127.0.0.1:1] "get" "k"\r\n');
    send('RESET');
    send('GET k');
    backend.reply('+1700000000.2 [0 127.0.0.1:1] "reset"\r\n+RESET\r\n$-1\r\n');
    await tick();
    expect(replies).toEqual(['+OK\r\n', '+RESET\r\n', '$-1\r\n']);
    expect(pushes).toHaveLength(2);
  });

  it('relogin sends AUTH after what is in flight and consumes its reply; a refusal rejects', async () => {
    const { backend, router, replies, send } = setup();
    send('GET a');
    const ok = router.relogin({ credential: { kind: 'password', user: 'app', password: 'pw' } });
    await tick();
    expect(backend.written).toMatch(/GET.*\r\n\*3\r\n\$4\r\nAUTH\r\n\$3\r\napp\r\n\$2\r\npw\r\n$/s);
    backend.reply('$-1\r\n+OK\r\n');
    await ok;
    expect(replies).toEqual(['$-1\r\n']);
    const refused = router.relogin({
      credential: { kind: 'password', user: 'app', password: 'new', fallbackPasswords: ['old'] },
    });
    backend.reply('-WRONGPASS invalid username-password pair\r\n');
    await tick();
    backend.reply('-WRONGPASS invalid username-password pair\r\n');
    await expect(refused).rejects.toMatchObject({ code: 'BACKEND_AUTH_FAILED' });
    expect(backend.written).toContain('$3\r\nold\r\n'); // the fallback password was tried too
  });

  it('after RESET an mtls login (no AUTH to send) is checked with ACL WHOAMI; another user rejects', async () => {
    const { backend, router } = setup();
    const database = { spec: { protocol: 'redis', uri: 'redis://h:6379' } } as Database;
    const login = { credential: { kind: 'certificate', user: 'default' } } as BackendLogin;
    const same = router.restore(login, database);
    await new Promise((r) => setTimeout(r, 10));
    expect(backend.written).toBe('*2\r\n$3\r\nACL\r\n$6\r\nWHOAMI\r\n');
    backend.reply('$7\r\ndefault\r\n');
    await same;
    // `default` needs a password on this server: after RESET the connection is nobody.
    const other = router.restore(login, database);
    await new Promise((r) => setTimeout(r, 10));
    backend.reply('-NOAUTH Authentication required.\r\n');
    await expect(other).rejects.toMatchObject({ code: 'BACKEND_AUTH_FAILED' });
  });

  it('a reply to no command, or the backend closing, fails the router once', async () => {
    const { backend, router } = setup();
    const failures: string[] = [];
    router.onFailure((e) => failures.push(e.code));
    backend.reply('+OK\r\n');
    backend.destroy();
    await tick();
    expect(failures).toEqual(['BACKEND_UNREACHABLE']);
  });
});

const push = (...items: string[]) =>
  `>${items.length}\r\n${items.map((i) => (/^\d+$/.test(i) ? `:${i}\r\n` : `$${i.length}\r\n${i}\r\n`)).join('')}`;
const HELLO3 = '%1\r\n$5\r\nproto\r\n:3\r\n';

describe('StandaloneRouter after HELLO 3', () => {
  it('a HELLO 3 the backend refuses leaves the connection in RESP2', async () => {
    const { backend, replies, pushes, send } = setup();
    send('SUBSCRIBE a');
    send('HELLO 3');
    backend.reply(`${sub('subscribe', 'a', 1)}-NOPERM no hello\r\n${message('a', 'hi')}`);
    await tick();
    expect(replies).toEqual([sub('subscribe', 'a', 1), '-NOPERM no hello\r\n']);
    expect(pushes).toEqual([message('a', 'hi')]);
  });

  async function resp3() {
    const t = setup();
    t.send('HELLO 3');
    t.backend.reply(HELLO3);
    await tick();
    t.replies.length = 0;
    return t;
  }

  it('relays `>` pushes (tracking invalidations) out of band, between replies', async () => {
    const { backend, replies, pushes, send } = await resp3();
    send('GET k');
    send('GET j');
    backend.reply(`$1\r\nv\r\n${push('invalidate', 'k')}_\r\n`);
    await tick();
    expect(replies).toEqual(['$1\r\nv\r\n', '_\r\n']);
    expect(pushes).toEqual([push('invalidate', 'k')]);
  });

  it('subscribe confirmations (pushes) answer SUBSCRIBE; messages among them stay pushes', async () => {
    const { backend, replies, pushes, send } = await resp3();
    send('SUBSCRIBE a b');
    send('GET k');
    backend.reply(push('subscribe', 'a', '1') + push('message', 'a', 'hi') + push('subscribe', 'b', '2'));
    // Subscribed, a RESP3 connection still runs commands: GET's reply is a reply, not a push.
    backend.reply(`$1\r\nv\r\n${push('message', 'b', 'yo')}`);
    await tick();
    expect(replies).toEqual([push('subscribe', 'a', '1') + push('subscribe', 'b', '2'), '$1\r\nv\r\n']);
    expect(pushes).toEqual([push('message', 'a', 'hi'), push('message', 'b', 'yo')]);
    send('UNSUBSCRIBE');
    send('PING');
    backend.reply(`${push('unsubscribe', 'a', '1')}${push('unsubscribe', 'b', '0')}+PONG\r\n`);
    await tick();
    expect(replies.slice(2)).toEqual([
      push('unsubscribe', 'a', '1') + push('unsubscribe', 'b', '0'),
      '+PONG\r\n',
    ]);
  });

  it('HELLO 2 and RESET go back to RESP2 framing: a message array is a push again only when subscribed', async () => {
    const { backend, replies, pushes, send } = await resp3();
    send('HELLO 2');
    backend.reply('*2\r\n$5\r\nproto\r\n:2\r\n');
    send('SUBSCRIBE a');
    backend.reply(sub('subscribe', 'a', 1) + message('a', 'hi'));
    await tick();
    expect(pushes).toEqual([message('a', 'hi')]);
    send('HELLO 3');
    backend.reply(HELLO3);
    send('RESET');
    backend.reply('+RESET\r\n');
    send('LRANGE l 0 -1');
    backend.reply(message('a', 'not a push'));
    await tick();
    expect(replies.at(-1)).toBe(message('a', 'not a push'));
    expect(pushes).toHaveLength(1);
  });
});
