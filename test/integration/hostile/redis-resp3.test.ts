// Hostile: RESP3 through the agent against a real Redis 7 (standalone; the CLIENT TRACKING refusals
// also through the 6-node cluster's one endpoint). Switching protocol must open no door RESP2 keeps
// shut: command and key denials, user switches, channels a database user may not read, and
// client-side caching, whose BCAST mode Redis itself does not check against key permissions (it
// would push the names of keys the database user's ACL hides). A stranger without a certificate
// must not get the agent to buffer RESP3 aggregates: the client parser takes none.
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AuditEvent } from '../../../src/agent/audit.js';
import type { TestAgent } from '../../support/agent.js';
import { REDIS_USERS } from '../../support/redis.js';
import { type ClusterFixture, startClusterFixture } from '../redis/cluster-fixture.js';
import { type PersonName, type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { MB, peakGrowth, received, streamUntilClosed, tlsClient } from './limits-support.js';
import { FrameReader, pipeline } from './resp.js';

let f: RedisFixture;
let cluster: ClusterFixture;
/** An agent whose login Secret also holds `keyed`: keys app:* and channels news:* only. */
let agent: TestAgent;
const sockets: TLSSocket[] = [];

beforeAll(async () => {
  [f, cluster] = await Promise.all([startRedisFixture(), startClusterFixture()]);
  await f.redis.cli(['ACL', 'SETUSER', 'keyed', 'on', '>keyed-pw', '~app:*', '&news:*', '+@all']);
  const login = {
    ...Object.fromEntries(Object.entries(REDIS_USERS).map(([u, v]) => [u, v.password])),
    keyed: 'keyed-pw',
  };
  agent = await f.startAgent(redisDocs(f.redis, { auth: 'password', login }));
}, 120_000);

afterAll(async () => {
  sockets.forEach((s) => s.destroy());
  await f?.stop();
  await cluster?.stop();
});

/** A raw connection to `agent` as `person`: `send` writes a pipeline, `read` takes the next frames. */
async function open(person: PersonName) {
  const socket = await f.rawAt(agent.port, person);
  sockets.push(socket);
  const frames = new FrameReader(socket);
  return {
    socket,
    send: (...commands: string[][]) => void socket.write(pipeline(commands)),
    read: (count = 1, ms?: number) => frames.next(count, ms),
    /** Sends PING and returns every frame up to its PONG: what arrived in between. */
    async drain(): Promise<string[]> {
      socket.write(pipeline([['PING']]));
      const got: string[] = [];
      for (;;) {
        const [frame] = await frames.next();
        if (frame === '+PONG\r\n') return got;
        got.push(frame!);
      }
    },
  };
}

/** ops logged in as `keyed` (ops may be any database user), in RESP3. */
async function keyed() {
  const c = await open('ops');
  c.send(['AUTH', 'keyed', 'x'], ['HELLO', '3']);
  const [auth, hello] = await c.read(2);
  expect(auth).toBe('+OK\r\n');
  expect(hello).toMatch(/^%/);
  return c;
}

/** The audit events `pick` selects, once `atLeast` are written (the sink buffers). */
function audited(pick: (e: AuditEvent) => boolean, atLeast = 1): Promise<AuditEvent[]> {
  return vi.waitFor(
    async () => {
      const got = (await agent.auditEvents()).filter(pick);
      expect(got.length).toBeGreaterThanOrEqual(atLeast);
      return got;
    },
    { timeout: 5000, interval: 100 },
  );
}

const invalidation = (key: string) => `>2\r\n$10\r\ninvalidate\r\n*1\r\n$${key.length}\r\n${key}\r\n`;

describe('access checks are the same in RESP3', () => {
  it('HELLO 3 answers with the backend’s map; HELLO 2 and RESET bring the connection back to RESP2', async () => {
    const c = await open('alice');
    c.send(['HSET', 'r3:h', 'f', 'v'], ['HELLO', '3', 'SETNAME', 'r3name'], ['HGETALL', 'r3:h'], ['HELLO']);
    c.send(['CLIENT', 'GETNAME']);
    const [, hello, map, bare, name] = await c.read(5);
    expect(name).toBe('$6\r\nr3name\r\n');
    expect(hello).toMatch(/^%7\r\n/);
    expect(hello).toContain('$5\r\nproto\r\n:3\r\n');
    expect(map).toBe('%1\r\n$1\r\nf\r\n$1\r\nv\r\n');
    expect(bare).toContain('$5\r\nproto\r\n:3\r\n');
    c.send(
      ['HELLO', '2'],
      ['HGETALL', 'r3:h'],
      ['HELLO', '3'],
      ['RESET'],
      ['HGETALL', 'r3:h'],
      ['HELLO', '4'],
    );
    const [two, flat, three, reset, again, noproto] = await c.read(6);
    expect(two).toMatch(/^\*14\r\n/);
    expect(flat).toBe('*2\r\n$1\r\nf\r\n$1\r\nv\r\n');
    expect(three).toMatch(/^%7/);
    expect(reset).toBe('+RESET\r\n');
    expect(again).toBe('*2\r\n$1\r\nf\r\n$1\r\nv\r\n');
    expect(noproto).toMatch(/^-NOPROTO/);
  });

  it('a person denied a command is still denied after HELLO 3, naming the rule, and audited', async () => {
    const c = await open('rita');
    c.send(['HELLO', '3', 'AUTH', 'reader', 'rita-pw-1f3a'], ['SET', 'r3:k', 'v'], ['SUBSCRIBE', 'news:1']);
    const [hello, set, subscribe] = await c.read(3);
    expect(hello).toMatch(/^%/);
    expect(set).toMatch(/^-NOPERM drawbridge: no role allows "set"/);
    expect(subscribe).toMatch(/^-NOPERM drawbridge: no role allows "subscribe"/);
    expect(await f.redis.cli(['EXISTS', 'r3:k'])).toBe('0\n');
    const denied = await audited((e) => e.type === 'command.denied' && e.user === 'rita', 2);
    expect(denied.map((e) => e.command)).toEqual(expect.arrayContaining(['set', 'subscribe']));
    // HELLO's AUTH part is audited redacted; the HELLO relayed to the backend carries none.
    const login = await audited(
      (e) => e.user === 'rita' && (e.command === 'auth' || e.command === 'hello'),
      2,
    );
    expect(login.map((e) => [e.command, e.args])).toEqual([
      ['auth', ['reader', '[redacted]']],
      ['hello', ['3']],
    ]);
    expect(JSON.stringify(await agent.auditEvents())).not.toContain('rita-pw-1f3a');
  });

  it('HELLO 3 AUTH as a database user the person may not become is refused, and nothing switches', async () => {
    const c = await open('alice');
    c.send(['HELLO', '3', 'AUTH', 'admin', 'admin-pw'], ['ACL', 'WHOAMI'], ['HGETALL', 'r3:none']);
    const [hello, whoami, reply] = await c.read(3);
    expect(hello).toMatch(/^-(NOPERM|WRONGPASS) .*admin/);
    expect(whoami).toBe('$7\r\ndefault\r\n');
    // Still RESP2: an empty HGETALL is an empty array, not an empty map.
    expect(reply).toBe('*0\r\n');
    const refused = await audited((e) => e.type === 'session.denied' && e.dbUser === 'admin');
    expect(refused[0]!.reason).toMatch(/admin/);
  });

  it('the database user’s key ACL still holds in RESP3', async () => {
    const c = await keyed();
    c.send(['SET', 'secret:k', 'v'], ['GET', 'secret:k'], ['SET', 'app:k', 'v'], ['GET', 'app:k']);
    const [set, get, ok, value] = await c.read(4);
    expect(set).toMatch(/^-NOPERM/);
    expect(get).toMatch(/^-NOPERM/);
    expect(ok).toBe('+OK\r\n');
    expect(value).toBe('$1\r\nv\r\n');
  });
});

describe('RESP3 pub/sub', () => {
  it('a channel outside the database user’s ACL is refused; allowed ones push while commands run', async () => {
    const c = await keyed();
    c.send(['SUBSCRIBE', 'secret'], ['SUBSCRIBE', 'news:1']);
    const [refused, subscribed] = await c.read(2);
    expect(refused).toMatch(/^-NOPERM/);
    expect(subscribed).toBe('>3\r\n$9\r\nsubscribe\r\n$6\r\nnews:1\r\n:1\r\n');
    await f.redis.cli(['PUBLISH', 'secret', 'hidden']);
    await f.redis.cli(['PUBLISH', 'news:1', 'hello']);
    // Subscribed, and still running commands (RESP3): the push, then GET's reply, on one connection.
    c.send(['GET', 'app:none']);
    const [push, reply] = await c.read(2);
    expect(push).toBe('>3\r\n$7\r\nmessage\r\n$6\r\nnews:1\r\n$5\r\nhello\r\n');
    expect(reply).toBe('_\r\n');
    expect(await c.drain()).toEqual([]);
    // The unsubscribe confirmation answers UNSUBSCRIBE: an agent-made reply after it is not held back.
    c.send(['UNSUBSCRIBE', 'news:1'], ['CLIENT', 'TRACKING', 'ON', 'REDIRECT', '1'], ['ECHO', 'last']);
    const [unsubscribed, refusedTracking, echo] = await c.read(3);
    expect(unsubscribed).toBe('>3\r\n$11\r\nunsubscribe\r\n$6\r\nnews:1\r\n:0\r\n');
    expect(refusedTracking).toMatch(/^-NOPERM drawbridge: CLIENT TRACKING \.\.\. REDIRECT/);
    expect(echo).toBe('$4\r\nlast\r\n');
  });
});

describe('client tracking', () => {
  it('is refused in RESP2 and with REDIRECT, naming why; the refusal is audited', async () => {
    const c = await open('alice');
    c.send(['CLIENT', 'TRACKING', 'ON'], ['HELLO', '3'], ['CLIENT', 'TRACKING', 'ON', 'REDIRECT', '1']);
    const [resp2, , redirect] = await c.read(3);
    expect(resp2).toMatch(/^-NOPERM drawbridge: CLIENT TRACKING in RESP2 needs REDIRECT.*send HELLO 3 first/);
    expect(redirect).toMatch(/^-NOPERM drawbridge: CLIENT TRACKING \.\.\. REDIRECT is not available/);
    const denied = await audited((e) => e.type === 'command.denied' && e.command === 'client|tracking', 2);
    expect(denied.every((e) => typeof e.reason === 'string' && e.reason.includes('CLIENT TRACKING'))).toBe(
      true,
    );
  });

  it('BCAST on prefixes outside the database user’s readable keys is refused and pushes nothing', async () => {
    const c = await keyed();
    c.send(
      ['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'secret:'],
      ['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'app:', 'PREFIX', 's'],
      ['CLIENT', 'TRACKING', 'ON', 'BCAST'],
    );
    const [secret, mixed, all] = await c.read(3);
    expect(secret).toMatch(
      /^-NOPERM drawbridge: CLIENT TRACKING BCAST PREFIX "secret:" is outside the keys database user "keyed" may read \(app:\*\)/,
    );
    expect(mixed).toMatch(/PREFIX "s" is outside/);
    expect(all).toMatch(/BCAST without PREFIX \(every key\) is outside/);
    await f.redis.cli(['SET', 'secret:pw', 'hunter2']);
    expect((await c.drain()).join('')).not.toContain('secret:pw');
  });

  it('BCAST inside the readable keys pushes invalidations for them only', async () => {
    const c = await keyed();
    c.send(['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'app:']);
    expect(await c.read()).toEqual(['+OK\r\n']);
    await f.redis.cli(['SET', 'secret:pw2', 'x']);
    await f.redis.cli(['SET', 'app:bc', 'x']);
    expect(await c.drain()).toEqual([invalidation('app:bc')]);
  });

  it('AUTH as another database user is refused while BCAST tracks prefixes checked for the first', async () => {
    const c = await open('ops');
    c.send(
      ['AUTH', 'admin', 'x'],
      ['HELLO', '3'],
      ['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'secret:'],
      ['AUTH', 'keyed', 'x'],
      ['ACL', 'WHOAMI'],
    );
    const [auth, , on, switched, whoami] = await c.read(5);
    expect([auth, on]).toEqual(['+OK\r\n', '+OK\r\n']);
    expect(switched).toMatch(/^-\S+ .*AUTH as database user "keyed" is refused while CLIENT TRACKING is on/);
    expect(whoami).toBe('$5\r\nadmin\r\n');
    // keyed may not read secret:*, so its invalidations must not reach a session logged in as keyed.
    c.send(['CLIENT', 'TRACKING', 'OFF'], ['AUTH', 'keyed', 'x'], ['ACL', 'WHOAMI']);
    expect(await c.read(3)).toEqual(['+OK\r\n', '+OK\r\n', '$5\r\nkeyed\r\n']);
    await f.redis.cli(['SET', 'secret:pw4', 'x']);
    expect((await c.drain()).join('')).not.toContain('secret:pw4');
  });

  it('AUTH as another database user is refused while default tracking follows keys the first one read', async () => {
    await f.redis.cli(['SET', 'secret:read', 'v1']);
    const c = await open('ops');
    c.send(
      ['AUTH', 'admin', 'x'],
      ['HELLO', '3'],
      ['CLIENT', 'TRACKING', 'ON'],
      ['GET', 'secret:read'],
      ['AUTH', 'keyed', 'x'],
      ['ACL', 'WHOAMI'],
    );
    const [, , on, value, switched, whoami] = await c.read(6);
    expect([on, value]).toEqual(['+OK\r\n', '$2\r\nv1\r\n']);
    expect(switched).toMatch(/^-\S+ .*AUTH as database user "keyed" is refused while CLIENT TRACKING is on/);
    expect(whoami).toBe('$5\r\nadmin\r\n');
    // keyed may not read secret:*: once tracking is off and the switch done, no invalidation tells it of writes.
    c.send(['CLIENT', 'TRACKING', 'OFF'], ['AUTH', 'keyed', 'x'], ['ACL', 'WHOAMI']);
    expect(await c.read(3)).toEqual(['+OK\r\n', '+OK\r\n', '$5\r\nkeyed\r\n']);
    await f.redis.cli(['SET', 'secret:read', 'v2']);
    expect((await c.drain()).join('')).not.toContain('secret:read');
  });

  it('BCAST is refused when the agent cannot read the database user’s key patterns', async () => {
    const c = await open('alice');
    c.send(['AUTH', 'app', 'x'], ['HELLO', '3'], ['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'app:']);
    const [, , refused] = await c.read(3);
    expect(refused).toMatch(/^-NOPERM drawbridge: CLIENT TRACKING BCAST is refused: .*ACL GETUSER: NOPERM/);
  });

  it('default mode: the reader gets an invalidation for a key it read once another client writes it', async () => {
    const c = await open('alice');
    await f.redis.cli(['SET', 'r3:tracked', 'v1']);
    c.send(['HELLO', '3'], ['CLIENT', 'TRACKING', 'ON', 'NOLOOP'], ['GET', 'r3:tracked']);
    const [, on, value] = await c.read(3);
    expect(on).toBe('+OK\r\n');
    expect(value).toBe('$2\r\nv1\r\n');
    await f.redis.cli(['SET', 'r3:tracked', 'v2']);
    expect(await c.drain()).toEqual([invalidation('r3:tracked')]);
    const relayed = await audited((e) => e.type === 'command' && e.command === 'client|tracking');
    expect(relayed.map((e) => e.args)).toContainEqual(['TRACKING', 'ON', 'NOLOOP']);
  });

  it('OPTIN tracks only reads after CLIENT CACHING yes; OPTOUT all but those after CLIENT CACHING no', async () => {
    const c = await open('alice');
    c.send(
      ['HELLO', '3'],
      ['CLIENT', 'TRACKING', 'ON', 'OPTIN'],
      ['CLIENT', 'CACHING', 'yes'],
      ['GET', 'r3:in:a'],
      ['GET', 'r3:in:b'],
    );
    expect((await c.read(5)).slice(1, 3)).toEqual(['+OK\r\n', '+OK\r\n']);
    await f.redis.cli(['MSET', 'r3:in:a', '1', 'r3:in:b', '1']);
    expect(await c.drain()).toEqual([invalidation('r3:in:a')]);
    c.send(
      ['CLIENT', 'TRACKING', 'OFF'],
      ['CLIENT', 'TRACKING', 'ON', 'OPTOUT'],
      ['CLIENT', 'CACHING', 'no'],
      ['GET', 'r3:out:a'],
      ['GET', 'r3:out:b'],
    );
    expect((await c.read(5)).slice(0, 3)).toEqual(['+OK\r\n', '+OK\r\n', '+OK\r\n']);
    await f.redis.cli(['MSET', 'r3:out:a', '1', 'r3:out:b', '1']);
    expect(await c.drain()).toEqual([invalidation('r3:out:b')]);
  });

  it('RESET ends tracking and RESP3: no invalidation after it', async () => {
    const c = await open('alice');
    c.send(['HELLO', '3'], ['CLIENT', 'TRACKING', 'ON'], ['GET', 'r3:reset'], ['RESET']);
    const [, , , reset] = await c.read(4);
    expect(reset).toBe('+RESET\r\n');
    await f.redis.cli(['SET', 'r3:reset', 'x']);
    expect(await c.drain()).toEqual([]);
  });
});

describe('client tracking through one Redis Cluster endpoint: the same refusals', () => {
  // The agent's first cluster session learns the topology (CLUSTER SHARDS) and the command table
  // (COMMAND), and each login's first proves it (PING), over new TLS connections to the nodes: 2-3 s on
  // a loaded machine, against 0.2 s for the refusals themselves, and past the 5 s frame deadline below
  // in a loaded CI run. Sessions that only PING pay for it here, with no deadline but the hook's.
  beforeAll(async () => {
    const pongs = await Promise.all((['alice', 'ops'] as const).map((p) => cluster.cli(p, ['PING'])));
    expect(pongs.map((r) => r.trim())).toEqual(['PONG', 'PONG']);
  });

  it('RESP2, REDIRECT and BCAST the agent cannot check are refused; BCAST inside the user’s keys is not', async () => {
    const alice = await cluster.raw('alice');
    const ops = await cluster.raw('ops');
    sockets.push(alice, ops);
    const a = new FrameReader(alice);
    const o = new FrameReader(ops);
    alice.write(
      pipeline([
        ['CLIENT', 'TRACKING', 'ON'],
        ['AUTH', 'app', 'x'],
        ['HELLO', '3'],
        ['CLIENT', 'TRACKING', 'ON', 'REDIRECT', '1'],
        ['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'r3c:'],
      ]),
    );
    const [resp2, , hello, redirect, bcast] = await a.next(5);
    expect(resp2).toMatch(/^-NOPERM drawbridge: CLIENT TRACKING in RESP2 needs REDIRECT/);
    expect(hello).toMatch(/^%/);
    expect(redirect).toMatch(/^-NOPERM drawbridge: CLIENT TRACKING \.\.\. REDIRECT is not available/);
    // `app` may not run ACL GETUSER (-@dangerous): its key patterns cannot be checked.
    expect(bcast).toMatch(/^-NOPERM drawbridge: CLIENT TRACKING BCAST is refused: .*ACL GETUSER: NOPERM/);
    ops.write(
      pipeline([
        ['HELLO', '3'],
        ['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'r3c:'],
      ]),
    );
    const [, on] = await o.next(2);
    expect(on).toBe('+OK\r\n');
  });
});

describe('a stranger cannot make the agent buffer RESP3 framing', () => {
  const stranger = () => tlsClient(agent.port, { ca: f.ca.certPem });

  it.each([
    ['a streamed aggregate', '*?\r\n', /-ERR Protocol error: invalid multibulk length/],
    ['nested arrays', '*1\r\n'.repeat(10_000), /-ERR Protocol error: expected '\$', got '\*'/],
    ['a streamed string', '*1\r\n$?\r\n;4\r\nhell\r\n', /-ERR Protocol error: invalid bulk length/],
  ])('%s ends the connection', async (_what, input, error) => {
    const s = await stranger();
    sockets.push(s);
    const reply = received(s);
    s.write(input);
    const r = await reply;
    expect(r.text).toMatch(error);
    expect(r.closed).toBe(true);
  });

  it('a huge map header, then an endless body, is cut off: the agent buffers none of it', async () => {
    const s = await stranger();
    sockets.push(s);
    const reply = received(s);
    const { result: sent, buffers } = await peakGrowth(() =>
      streamUntilClosed(s, Buffer.from('%2147483647\r\n'), 200 * MB),
    );
    const r = await reply;
    // The header is an inline command to a client parser that knows no maps: not authenticated.
    expect(r.text).toMatch(/^-NOAUTH/);
    expect(r.text).toContain('-ERR Protocol error: too big inline request');
    expect(r.closed).toBe(true);
    expect(sent).toBeLessThan(32 * MB);
    expect(buffers).toBeLessThan(16 * MB);
  });
});
