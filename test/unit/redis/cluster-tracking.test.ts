// CLIENT TRACKING on a cluster session (tracking.ts) over fake node connections: tracking turned on
// on every master, whole-cache invalidation when a connection drops or the shape changes, CLIENT
// CACHING's checks, and the connections it lends transactions and blocking commands (blocking.ts).
import { describe, expect, it } from 'vitest';
import { BlockingLanes } from '../../../src/engines/redis/cluster/blocking.js';
import type { NodeConnection } from '../../../src/engines/redis/cluster/node-connection.js';
import type { LoginPool } from '../../../src/engines/redis/cluster/pool.js';
import type { SendContext } from '../../../src/engines/redis/cluster/sender.js';
import { type Lender, Tracking } from '../../../src/engines/redis/cluster/tracking.js';
import type { RedisCommand } from '../../../src/engines/redis/parser.js';
import type { RedisReplyError } from '../../../src/engines/redis/router.js';
import { encodeCommand } from '../../../src/engines/redis/serializer.js';

const b = (s: string) => Buffer.from(s);
const text = (r: Buffer | RedisReplyError) =>
  Buffer.isBuffer(r) ? r.toString('latin1') : `${r.prefix} ${r.message}`;

/** A command as its words, as a fake node connection saw it. */
const words = (raw: Buffer) =>
  raw
    .toString()
    .split('\r\n')
    .filter((_, i) => i % 2 === 0 && i > 0)
    .join(' ');

describe('Tracking (one session)', () => {
  /** A tracking session over fake node connections; `invalidate` plays a node's push. */
  function setup() {
    const pushed: string[] = [];
    const onPush: ((f: Buffer) => void)[] = [];
    const onClose: (() => void)[] = [];
    const sent: string[] = [];
    const conn = {
      onPush: (fn: (f: Buffer) => void) => onPush.push(fn),
      onClose: (fn: () => void) => onClose.push(fn),
      send: (raw: Buffer, h: (r: Buffer) => void) => {
        sent.push(words(raw));
        h(b('+OK\r\n'));
        return true;
      },
    } as unknown as NodeConnection;
    const masters = [0];
    const t = new Tracking({
      ctx: { topology: { masters: () => masters } } as unknown as SendContext,
      pool: () => ({ take: () => conn, release: () => undefined }) as unknown as LoginPool,
      push: (f) => pushed.push(f.toString()),
    });
    const on = encodeCommand(['CLIENT', 'TRACKING', 'ON']);
    let answer = '';
    t.run(
      { name: 'client|tracking', args: ['CLIENT', 'TRACKING', 'ON'].map(b), raw: on },
      (r) => (answer = String(r)),
    );
    const invalidate = (key: string) =>
      onPush.forEach((fn) => fn(b(`>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\n${key}\r\n`)));
    return { t, pushed, answer, sent, invalidate, lose: () => onClose.forEach((fn) => fn()), masters };
  }

  it("turns tracking on with the client's own command on every master connection", () => {
    const s = setup();
    expect(s.answer).toBe('+OK\r\n');
    expect(s.sent).toEqual(['CLIENT TRACKING ON']);
    s.invalidate('k');
    expect(s.pushed).toEqual(['>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n']);
  });

  it('a lost tracking connection or a new cluster shape tells the client to drop its whole cache', () => {
    const s = setup();
    s.lose();
    s.t.reshaped();
    expect(s.pushed).toEqual(['>2\r\n$10\r\ninvalidate\r\n_\r\n', '>2\r\n$10\r\ninvalidate\r\n_\r\n']);
    s.t.off();
    s.t.reshaped();
    expect(s.pushed).toHaveLength(2);
  });

  it('CLIENT CACHING is checked as Redis checks it', () => {
    const s = setup();
    const caching = (arg: string) =>
      s.t.caching({ name: 'client|caching', args: ['CLIENT', 'CACHING', arg].map(b), raw: b('') })?.message;
    expect(caching('yes')).toMatch(/only when the client is in tracking mode with OPTIN or OPTOUT/);
    expect(caching('maybe')).toBe('syntax error');
  });
});

describe('Tracking as the lender of transaction and blocking connections', () => {
  /** Fake node connections recording what was sent, and a pool recording what came back. */
  function setup(options: string[]) {
    const pushed: string[] = [];
    const pooled: string[] = [];
    let made = 0;
    const conn = (node: number) => {
      const id = `c${made++}`;
      const c = {
        id,
        node,
        closed: false,
        inFlight: 0,
        sent: [] as string[],
        push: (_: Buffer) => undefined as void,
        pause: () => undefined,
        onPush: (fn: (f: Buffer) => void) => (c.push = fn),
        onClose: () => undefined,
        send: (raw: Buffer, h: (r: Buffer) => void) => {
          c.sent.push(words(raw));
          h(b('+OK\r\n'));
          return true;
        },
      };
      return c;
    };
    type Fake = ReturnType<typeof conn>;
    const t = new Tracking({
      ctx: { topology: { masters: () => [0] } } as unknown as SendContext,
      pool: () =>
        ({
          take: (node: number) => conn(node),
          release: (c: Fake, clean: boolean) => pooled.push(`${c.id}:${clean ? 'clean' : 'closed'}`),
        }) as unknown as LoginPool,
      push: (f) => pushed.push(f.toString()),
    });
    const args = ['CLIENT', 'TRACKING', 'ON', ...options];
    t.run({ name: 'client|tracking', args: args.map(b), raw: encodeCommand(args) }, () => undefined);
    const take = (node: number) => t.take(node) as unknown as Fake;
    const give = (c: Fake, clean = true) => t.release(c as unknown as NodeConnection, clean);
    return { t, take, give, pushed, pooled };
  }
  const invalidate = b('>2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n');

  it('lends connections that track every read (CLIENT CACHING is not carried over), kept while tracking lasts', () => {
    const s = setup(['OPTIN', 'NOLOOP']);
    const c = s.take(1);
    expect(c.sent).toEqual(['CLIENT TRACKING ON NOLOOP']);
    c.push(invalidate);
    expect(s.pushed).toEqual([invalidate.toString()]);
    s.give(c);
    expect(s.take(1)).toBe(c); // its tracking table is still good
    expect(s.pooled).toEqual([]);
    s.give(c);
    s.t.off();
    expect(s.pooled).toEqual(['c0:closed', 'c1:closed']); // the plain connection too
  });

  it('after OFF a connection still lent pushes nothing and is closed when given back, never pooled clean', () => {
    const s = setup([]);
    const c = s.take(2);
    s.t.off();
    c.push(invalidate);
    expect(s.pushed).toEqual([]);
    expect(s.t.current(c as unknown as NodeConnection)).toBe(false);
    s.give(c);
    expect(s.pooled.at(-1)).toBe(`${c.id}:closed`);
  });

  it('BCAST (prefixes, not reads) and tracking off lend plain pool connections', () => {
    const s = setup(['BCAST', 'PREFIX', 'p:']);
    const c = s.take(3);
    expect(c.sent).toEqual([]);
    s.give(c);
    expect(s.pooled).toEqual([`${c.id}:clean`]);
  });

  it('CLIENT TRACKING ON is refused while WATCH holds a connection', () => {
    const s = setup([]);
    let answer = '';
    const args = ['CLIENT', 'TRACKING', 'ON'];
    s.t.run(
      { name: 'client|tracking', args: args.map(b), raw: encodeCommand(args) },
      (r) => (answer = text(r)),
      true,
    );
    expect(answer).toMatch(/^ERR CLIENT TRACKING ON cannot start while WATCH holds/);
  });
});

describe('BlockingLanes', () => {
  it('gives back a connection the lender no longer hands out (tracking turned on or off) and takes a new one', () => {
    const given: string[] = [];
    let fresh = true;
    let made = 0;
    const lender: Lender = {
      take: (node) => ({ node, id: made++, closed: false, inFlight: 0 }) as unknown as NodeConnection,
      release: (c, clean) => given.push(`${(c as unknown as { id: number }).id}:${clean}`),
      current: () => fresh,
    };
    const lanes = new BlockingLanes(lender, 30_000);
    const blpop = { name: 'blpop', args: ['BLPOP', 'q', '5'].map(b), raw: b('') } as RedisCommand;
    const first = lanes.lane(blpop)(1);
    expect(first.replyLimitMs).toBe(35_000);
    expect(lanes.lane(blpop)(1)).toBe(first);
    fresh = false;
    const second = lanes.lane(blpop)(1);
    expect(second).not.toBe(first);
    expect(given).toEqual(['0:true']);
    expect(first.replyLimitMs).toBeUndefined();
  });
});
