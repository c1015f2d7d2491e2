// The cluster router's RESP3 paths that need no server: merging RESP3 replies of several nodes,
// redirects in blob errors, a node connection that speaks RESP3 (HELLO 3 first, pushes never taken
// for replies) against a scripted loopback peer, pushes ordered after earlier replies, and HELLO's
// protocol switch (tracking: cluster-tracking.test.ts).
import { type Server, type Socket, connect, createServer } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { mergeReplies, sumCounts } from '../../../src/engines/redis/cluster/merge.js';
import { mergeSplit, splitBySlot } from '../../../src/engines/redis/cluster/multi-key.js';
import {
  NodeConnection,
  type ReplyTaker,
  NodeUnavailable,
  Resp3RefusedError,
} from '../../../src/engines/redis/cluster/node-connection.js';
import { ClusterRouter } from '../../../src/engines/redis/cluster/router.js';
import type { ClusterService } from '../../../src/engines/redis/cluster/service.js';
import { messageFor, nullArray } from '../../../src/engines/redis/cluster/protocol.js';
import { errorText } from '../../../src/engines/redis/reply-parser.js';
import { parseRedirect } from '../../../src/engines/redis/cluster/redirect.js';
import type { LoginPool } from '../../../src/engines/redis/cluster/pool.js';
import { PushOrder } from '../../../src/engines/redis/cluster/push-order.js';
import { redirectKind } from '../../../src/engines/redis/cluster/sender.js';
import type { RedisReplyError } from '../../../src/engines/redis/router.js';
import { encodeCommand } from '../../../src/engines/redis/serializer.js';

const b = (s: string) => Buffer.from(s);
const text = (r: Buffer | RedisReplyError) =>
  Buffer.isBuffer(r) ? r.toString('latin1') : `${r.prefix} ${r.message}`;
const verbatim = (t: string) => `=${t.length + 4}\r\ntxt:${t}\r\n`;
const blob = (t: string) => `!${t.length}\r\n${t}\r\n`;

describe('mergeReplies, RESP3 replies from several nodes', () => {
  it.each([
    ['DBSIZE agg_sum stays an integer', 'agg_sum', [':3\r\n', ':4\r\n'], ':7\r\n'],
    ['doubles are summed as doubles', 'agg_sum', [',1.5\r\n', ',2\r\n', ',0.25\r\n'], ',3.75\r\n'],
    ['doubles take their minimum', 'agg_min', [',1.5\r\n', ',-2\r\n'], ',-2\r\n'],
    ['booleans: logical and', 'agg_logical_and', ['#t\r\n', '#f\r\n', '#t\r\n'], '#f\r\n'],
    ['booleans: logical or', 'agg_logical_or', ['#f\r\n', '#t\r\n'], '#t\r\n'],
    [
      'arrays of booleans element by element',
      'agg_logical_and',
      ['*2\r\n#t\r\n#t\r\n', '*2\r\n#t\r\n#f\r\n'],
      '*2\r\n#t\r\n#f\r\n',
    ],
    ['a blob error wins', 'agg_sum', [':1\r\n', blob('ERR boom')], blob('ERR boom')],
    ['one_succeeded skips blob errors', 'one_succeeded', [blob('NOTBUSY x'), '+OK\r\n'], '+OK\r\n'],
    ['RANDOMKEY: first non-null over `_`', undefined, ['_\r\n', '$1\r\nk\r\n', '_\r\n'], '$1\r\nk\r\n'],
    ['RANDOMKEY: every node empty', undefined, ['_\r\n', '_\r\n'], '_\r\n'],
    [
      'sets are united, each member once',
      undefined,
      ['~2\r\n$1\r\na\r\n$1\r\nb\r\n', '~0\r\n', '~2\r\n$1\r\nb\r\n$1\r\nc\r\n'],
      '~3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n',
    ],
    [
      'maps are joined; a key both answer keeps the first value',
      undefined,
      ['%1\r\n$1\r\na\r\n:1\r\n', '%2\r\n$1\r\nb\r\n,2.5\r\n$1\r\na\r\n:9\r\n'],
      '%2\r\n$1\r\na\r\n:1\r\n$1\r\nb\r\n,2.5\r\n',
    ],
    [
      'arrays of RESP3 values are concatenated untouched',
      undefined,
      ['*1\r\n%1\r\n+k\r\n_\r\n', '*1\r\n~1\r\n,1\r\n'],
      '*2\r\n%1\r\n+k\r\n_\r\n~1\r\n,1\r\n',
    ],
  ] as const)('%s', (_name, policy, parts, want) => {
    expect(text(mergeReplies(policy, parts.map(b), ['n1', 'n2', 'n3'], 3))).toBe(want);
  });

  it('labels verbatim text (RESP3 INFO, MEMORY DOCTOR) per node and keeps it verbatim', () => {
    const out = text(
      mergeReplies('special', [b(verbatim('a:1\r\n')), b(verbatim('a:2\r\n'))], ['h:1', 'h:2'], 3),
    );
    const body = '# Node h:1\r\na:1\r\n\r\n# Node h:2\r\na:2\r\n';
    expect(out).toBe(verbatim(body));
  });

  it('special replies that are maps (MEMORY STATS) stay maps, one [node, map] pair per node', () => {
    const stats = (n: number) => `%2\r\n+peak.allocated\r\n:${n}\r\n+dataset.percentage\r\n,${n / 10}\r\n`;
    const out = text(mergeReplies('special', [b(stats(5)), b(stats(7))], ['h:1', 'h:2'], 3));
    expect(out).toBe(`*2\r\n*2\r\n$3\r\nh:1\r\n${stats(5)}*2\r\n$3\r\nh:2\r\n${stats(7)}`);
  });

  it('the same special reply for a RESP2 session is flat, as Redis answers RESP2', () => {
    const out = text(mergeReplies('special', [b('*2\r\n$1\r\nk\r\n:1\r\n')], ['h:1'], 2));
    expect(out).toBe('*1\r\n*2\r\n$3\r\nh:1\r\n*2\r\n$1\r\nk\r\n:1\r\n');
  });
});

describe('sumCounts (PUBSUB SHARDNUMSUB from every master)', () => {
  const reply = (a: number, b: number) => `*4\r\n$1\r\na\r\n:${a}\r\n$1\r\nb\r\n:${b}\r\n`;
  it.each([2, 3] as const)("sums each channel's count, names kept (RESP%i)", (proto) => {
    expect(text(sumCounts([b(reply(1, 0)), b(reply(0, 0)), b(reply(0, 2))], proto))).toBe(reply(1, 2));
  });

  it('sums a map of channel → count, and passes an error on', () => {
    const map = (n: number) => `%1\r\n$1\r\na\r\n:${n}\r\n`;
    expect(text(sumCounts([b(map(1)), b(map(2))], 3))).toBe(map(3));
    expect(text(sumCounts([b(map(1)), b('-NOPERM no\r\n')], 3))).toBe('-NOPERM no\r\n');
  });
});

describe('mergeSplit in RESP3', () => {
  it('MGET across slots keeps key order and RESP3 nulls', () => {
    const cmd = ['MGET', 'a', 'b', 'c'].map(b);
    const groups = splitBySlot(cmd, [1, 2, 3], 1);
    const replies = groups.map((g) =>
      b(`*${g.units.length}\r\n${g.units.map((u) => (u === 1 ? '_\r\n' : `$2\r\nv${u}\r\n`)).join('')}`),
    );
    expect(text(mergeSplit(undefined, groups, replies, 3, 3))).toBe('*3\r\n$2\r\nv0\r\n_\r\n$2\r\nv2\r\n');
    expect(text(mergeSplit(undefined, groups, replies, 3, 2))).toBe('*3\r\n$2\r\nv0\r\n$-1\r\n$2\r\nv2\r\n');
  });
});

describe('redirects and errors in RESP3 blob errors', () => {
  it.each([
    [blob('MOVED 3999 127.0.0.1:6381'), 'moved'],
    [blob('ASK 3999 127.0.0.1:6381'), 'ask'],
    [blob('TRYAGAIN Multiple keys'), 'retry'],
    [blob('CLUSTERDOWN down'), 'retry'],
    [blob('LOADING loading'), 'retry'],
    [blob('ERR MOVED 1 a:1'), undefined],
    ['$10\r\nMOVED 1 a:1\r\n', undefined],
  ])('%j', (frame, kind) => expect(redirectKind(b(frame))).toBe(kind));

  it('parses a blob error target', () => {
    expect(parseRedirect(b(blob('MOVED 12 10.1.2.3:7000')))).toEqual({
      kind: 'moved',
      slot: 12,
      address: { host: '10.1.2.3', port: 7000 },
    });
    expect(errorText(b(blob('ERR a\r\nb')))).toBe('ERR a\r\nb');
  });

  it('tags a message for the session protocol, copying only when it must', () => {
    const msg = b('*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n');
    expect(messageFor(msg, 2)).toBe(msg);
    const pushed = messageFor(msg, 3);
    expect(pushed.toString()).toBe('>3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nx\r\n');
    expect(msg[0]).toBe(0x2a);
    expect(messageFor(pushed, 2).equals(msg)).toBe(true);
    expect(nullArray(3).toString()).toBe('_\r\n');
    expect(nullArray(2).toString()).toBe('*-1\r\n');
  });
});

describe('NodeConnection speaking RESP3', () => {
  let server: Server | undefined;
  afterEach(() => new Promise<void>((r) => (server ? server.close(() => r()) : r())));

  /** A loopback peer that records what it reads and answers with `answer(bytesSoFar, socket)`. */
  async function peer(
    answer: (seen: string, s: Socket) => void,
  ): Promise<{ port: number; seen: () => string }> {
    let seen = '';
    server = createServer((s) => {
      s.on('data', (d) => {
        seen += d.toString('latin1');
        answer(seen, s);
      });
      s.on('error', () => undefined);
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const addr = server.address();
    return { port: typeof addr === 'object' && addr ? addr.port : 0, seen: () => seen };
  }

  const dial = (port: number) =>
    new Promise<Socket>((resolve, reject) => {
      const s = connect(port, '127.0.0.1', () => resolve(s));
      s.once('error', reject);
    });

  const get = (c: NodeConnection) =>
    new Promise<string>((resolve) =>
      c.send(encodeCommand(['GET', 'k']), (r) =>
        resolve(r instanceof NodeUnavailable ? `lost: ${r.error.message} (${r.error.hint})` : r.toString()),
      ),
    );

  it('says HELLO 3 before anything else, and a push between replies is never taken for one', async () => {
    let answered = false;
    const p = await peer((seen, s) => {
      if (answered || !seen.includes('GET')) return;
      answered = true;
      // HELLO's map, then an invalidation push nobody asked for, then GET's reply.
      s.write('%1\r\n$5\r\nproto\r\n:3\r\n>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n$1\r\nv\r\n');
    });
    const c = new NodeConnection(0, 'peer', dial(p.port), undefined, 3);
    expect(await get(c)).toBe('$1\r\nv\r\n');
    expect(p.seen().startsWith(encodeCommand(['HELLO', '3']).toString())).toBe(true);
    expect(c.closed).toBe(false);
    c.destroy();
  });

  it('a node refusing HELLO 3 fails the connection, naming the fix', async () => {
    const p = await peer((seen, s) => {
      if (seen.includes('GET')) s.write("-ERR unknown command 'HELLO'\r\n$1\r\nv\r\n");
    });
    const c = new NodeConnection(0, 'peer', dial(p.port), undefined, 3);
    expect(await get(c)).toMatch(
      /^lost: cluster node peer refused HELLO 3: ERR unknown command .*Redis 6 or later/,
    );
    expect(c.closed).toBe(true);
  });

  it('matches long pipelines to their handlers in order across ring growth, then fails the rest as sent on a loss', async () => {
    // The peer echoes each key back, in pieces split inside frames, until 1,040 answers; then it hangs up.
    let keys = 0;
    let answered = 0;
    const p = await peer((seen, s) => {
      const all = [...seen.matchAll(/\$\d+\r\n(k\d+)\r\n/g)].map((m) => m[1]!);
      let out = '';
      for (; keys < all.length && answered < 1040; keys++, answered++)
        out += `$${all[keys]!.length}\r\n${all[keys]}\r\n`;
      for (let at = 0; at < out.length; at += 7) s.write(out.slice(at, at + 7));
      if (answered === 1040) s.destroy();
    });
    const c = new NodeConnection(0, 'peer', dial(p.port));
    // Each command's handler records which command it belongs to with the reply it was given.
    const got: string[] = [];
    const taker = (i: number): ReplyTaker => ({
      replyAt: (bytes, start, end) => void got.push(`${i} ${bytes.toString('latin1', start, end)}`),
      unavailable: (why) => void got.push(`${i} lost sent=${why.sent}`),
    });
    const pipeline = (from: number, n: number) => {
      // The commands in place in one chunk, as a client's pipeline arrives; every third by callback.
      const cmds = Array.from({ length: n }, (_, i) => encodeCommand(['GET', `k${from + i}`]));
      const chunk = Buffer.concat(cmds);
      let at = 0;
      cmds.forEach((cmd, i) => {
        const t = taker(from + i);
        if (i % 3 === 2)
          c.send(cmd, (r) => (r instanceof NodeUnavailable ? t.unavailable(r) : t.replyAt(r, 0, r.length)));
        else c.sendAt(chunk, at, at + cmd.length, t);
        at += cmd.length;
      });
    };
    const expected = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => `${from + i} $${`k${from + i}`.length}\r\nk${from + i}\r\n`);
    pipeline(0, 40);
    await vi.waitFor(() => expect(got).toHaveLength(40));
    // The ring's start has moved on: this pipeline wraps around it and makes it grow several times.
    pipeline(40, 1200);
    await vi.waitFor(() => expect(got).toHaveLength(1240));
    expect(got.slice(0, 1040)).toEqual(expected(0, 1040));
    expect(got.slice(1040)).toEqual(Array.from({ length: 200 }, (_, i) => `${1040 + i} lost sent=true`));
    expect(c.inFlight).toBe(0);
  });

  it('a RESP2 connection sends no HELLO', async () => {
    const p = await peer((seen, s) => {
      if (seen.includes('GET')) s.write('$1\r\nv\r\n');
    });
    const c = new NodeConnection(0, 'peer', dial(p.port));
    expect(await get(c)).toBe('$1\r\nv\r\n');
    expect(p.seen()).toBe(encodeCommand(['GET', 'k']).toString());
    c.destroy();
  });
});

describe('PushOrder', () => {
  it('a push waits for the replies of commands sent before it, in any completion order', () => {
    const out: string[] = [];
    const order = new PushOrder((f) => out.push(f.toString()));
    order.push(b('first')); // nothing outstanding: at once
    const [a, c, d] = [order.sent(), order.sent(), order.sent()];
    order.push(b('after-3'));
    const e = order.sent();
    order.push(b('after-4'));
    order.answer(c);
    order.answer(a);
    expect(out).toEqual(['first']); // d is still out
    order.answer(d);
    expect(out).toEqual(['first', 'after-3']);
    order.answer(e);
    expect(out).toEqual(['first', 'after-3', 'after-4']);
    order.push(b('now'));
    expect(out.at(-1)).toBe('now');
  });

  it('reports the bytes it holds back, so the session can hold them to limits.outputBuffer', () => {
    const order = new PushOrder(() => undefined);
    const held: number[] = [];
    order.onHeld = (n) => held.push(n);
    order.push(b('12345')); // nothing outstanding: out at once, nothing held
    const blpop = order.sent();
    order.push(b('123'));
    order.push(b('1234567'));
    expect(held).toEqual([3, 10]);
    order.answer(blpop);
    const next = order.sent();
    order.push(b('12'));
    expect(held.at(-1)).toBe(2); // the released ones no longer count
    order.answer(next);
  });
});

describe('ClusterRouter HELLO', () => {
  /** A router over fake pools: each protocol's shared connection answers HELLO with `answers[p]`. */
  function setup(answers: Record<2 | 3, () => Buffer | NodeUnavailable>) {
    const joined: number[] = [];
    const pool = (p: 2 | 3) =>
      ({
        login: {},
        protocol: p,
        sharedTo: () => ({
          sendAt: (_bytes: Buffer, _from: number, _to: number, t: ReplyTaker) => {
            const r = answers[p]();
            if (r instanceof NodeUnavailable) t.unavailable(r);
            else t.replyAt(r, 0, r.length);
            return true;
          },
        }),
        release: () => undefined,
      }) as unknown as LoginPool;
    const service = {
      commandTimeoutMs: 1000,
      onReshape: () => () => undefined,
      rules: () => undefined,
      anyNode: () => 0,
      join: (_login: unknown, p: 2 | 3) => (joined.push(p), pool(p)),
      leave: () => undefined,
    } as unknown as ClusterService;
    const router = new ClusterRouter(service, pool(2));
    const hello = (v: string) =>
      new Promise<string>((resolve) =>
        router.dispatch({ name: 'hello', args: ['HELLO', v].map(b), raw: encodeCommand(['HELLO', v]) }, (r) =>
          resolve(Buffer.isBuffer(r) ? r.toString() : `-${r.prefix} ${r.message}`),
        ),
      );
    return { hello, joined };
  }

  it("HELLO 3 moves the session to the RESP3 pool and relays the node's map", async () => {
    const s = setup({ 2: () => b('*0\r\n'), 3: () => b('%1\r\n$5\r\nproto\r\n:3\r\n') });
    expect(await s.hello('3')).toBe('%1\r\n$5\r\nproto\r\n:3\r\n');
    expect(s.joined).toEqual([3]);
  });

  it('nodes refusing RESP3: NOPROTO (clients fall back) and the session back in its RESP2 pool', async () => {
    const refused = new Resp3RefusedError('a:1', "ERR unknown command 'HELLO'");
    const s = setup({ 2: () => b('*0\r\n'), 3: () => new NodeUnavailable(refused, true) });
    expect(await s.hello('3')).toMatch(
      /^-NOPROTO RESP3 is not available on this cluster: cluster node a:1 refused HELLO 3/,
    );
    expect(s.joined).toEqual([3, 2]);
    expect(await s.hello('2')).toBe('*0\r\n'); // already RESP2: no switch
    expect(s.joined).toEqual([3, 2]);
  });
});
