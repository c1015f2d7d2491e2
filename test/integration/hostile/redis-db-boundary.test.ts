// Hostile: a session on a Database for DB 3 of a real Redis 7 (spec.uri `.../3`) trying to read or
// write DB 0 — SELECT, SWAPDB, MOVE, COPY ... DB, MIGRATE to the same server, MONITOR, inside MULTI,
// and in scripts where scripting is granted (then the backend ACL user, pinned with
// `-select +select|3`, is the boundary). In Redis Cluster only DB 0 exists and SELECT 0 is answered.
// What acts on the whole server (FLUSHALL, REPLICAOF, SLOWLOG GET...): redis-server-wide.test.ts.
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestAgent } from '../../support/agent.js';
import { REDIS_USERS, accessRole } from '../../support/redis.js';
import { type ClusterFixture, startClusterFixture } from '../redis/cluster-fixture.js';
import { type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { exchange, pipeline } from './resp.js';

let f: RedisFixture;
let db3: TestAgent;
let cluster: ClusterFixture;
const sockets: TLSSocket[] = [];

/** A backend user pinned to DB 3 by the server's own ACL (Redis 7 first-arg rule). */
const PINNED = { user: 'db3app', password: 'db3app-pw' };

function db3Docs(): object[] {
  return [
    ...redisDocs(f.redis, {
      auth: 'password',
      login: {
        ...Object.fromEntries(Object.entries(REDIS_USERS).map(([u, v]) => [u, v.password])),
        [PINNED.user]: PINNED.password,
      },
    }).map((d) => {
      const doc = d as { kind: string; spec: { uri: string } };
      return doc.kind === 'Database' ? { ...doc, spec: { ...doc.spec, uri: `${doc.spec.uri}/3` } } : d;
    }),
    accessRole('scripts', {
      databaseLabels: { env: '*' },
      databaseUsers: [PINNED.user],
      redisScripting: true,
    }),
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'DatabaseUser',
      metadata: { name: 'alice-scripts' },
      spec: { subjects: [{ kind: 'User', name: 'alice' }], roles: ['scripts'] },
    },
  ];
}

const server = (db: number, ...args: string[]) =>
  f.redis.cli(['-n', String(db), ...args]).then((s) => s.trim());

async function raw(person: 'alice' | 'ops', port = db3.port): Promise<TLSSocket> {
  const s = await f.rawAt(port, person);
  sockets.push(s);
  return s;
}

beforeAll(async () => {
  [f, cluster] = await Promise.all([startRedisFixture(), startClusterFixture()]);
  await f.redis.cli([
    'ACL',
    'SETUSER',
    PINNED.user,
    'on',
    `>${PINNED.password}`,
    '~*',
    '&*',
    '+@all',
    '-@dangerous',
    '-select',
    '+select|3',
  ]);
  db3 = await f.startAgent(db3Docs());
}, 120_000);

afterAll(async () => {
  sockets.forEach((s) => s.destroy());
  await f?.stop();
  await cluster?.stop();
});

/** Server-side count of SELECT calls (commandstats), to see which SELECTs reached the server. */
async function selectCalls(): Promise<number> {
  const m = /cmdstat_select:calls=(\d+)/.exec(await server(0, 'INFO', 'commandstats'));
  return Number(m?.[1] ?? 0);
}

describe('standalone, Database on DB 3', () => {
  it('SELECT 3 is answered by the agent; every other way to DB 0 is refused, naming the boundary', async () => {
    await server(0, 'SET', 'secret', 'db0-value');
    await server(3, 'SET', 'mine', 'db3-value');
    const ops = await raw('ops');
    expect(await exchange(ops, pipeline([['PING']]), 1)).toEqual(['PONG']); // logged in: the agent's own SELECT 3 is done
    const before = await selectCalls();
    const port = String(f.redis.tlsPort);
    const attempts = [
      ['SELECT', '0'],
      ['SELECT', '03'],
      ['SWAPDB', '0', '3'],
      ['MOVE', 'mine', '0'],
      ['COPY', 'mine', 'secret', 'DB', '0', 'REPLACE'],
      ['COPY', 'mine', 'copied', 'DB', '3', 'db', '0'],
      ['MIGRATE', '127.0.0.1', port, 'mine', '0', '1000', 'COPY', 'REPLACE'],
      ['MONITOR'],
    ];
    const out = await exchange(
      ops,
      pipeline([['SELECT', '3'], ...attempts, ['GET', 'secret'], ['GET', 'mine']]),
      attempts.length + 3,
    );
    expect(out[0]).toBe('OK');
    for (const r of out.slice(1, -2)) {
      expect(r).toMatch(
        /^-NOPERM drawbridge: the DB number is this Database's boundary \(DB 3 in spec\.uri\)/,
      );
    }
    expect(out.slice(-2)).toEqual([null, 'db3-value']);
    expect(await selectCalls()).toBe(before); // SELECT 3 never reached the server
    expect(await server(0, 'GET', 'secret')).toBe('db0-value');
    expect(await server(0, 'EXISTS', 'mine')).toBe('0');
    expect(await server(0, 'EXISTS', 'copied')).toBe('0');
    expect(await server(3, 'GET', 'mine')).toBe('db3-value');
    await sleep(200);
    const denied = (await db3.auditEvents()).filter((e) => e.type === 'command.denied' && e.user === 'ops');
    expect(denied.map((e) => e.command)).toEqual([
      'select',
      'select',
      'swapdb',
      'move',
      'copy',
      'copy',
      'migrate',
      'monitor',
    ]);
    expect(denied[0]!.reason).toBe(
      "the DB number is this Database's boundary (DB 3 in spec.uri): SELECT 0 would leave it",
    );
  });

  it('inside MULTI: SELECT 3 is queued as usual, SELECT 0 aborts the transaction', async () => {
    const ops = await raw('ops');
    const out = await exchange(
      ops,
      pipeline([
        ['MULTI'],
        ['SELECT', '3'],
        ['GET', 'mine'],
        ['EXEC'],
        ['MULTI'],
        ['SELECT', '0'],
        ['SET', 'secret', 'overwritten'],
        ['EXEC'],
      ]),
      8,
    );
    expect(out.slice(0, 4)).toEqual(['OK', 'QUEUED', 'QUEUED', ['OK', 'db3-value']]);
    expect(out[4]).toBe('OK');
    expect(out[5]).toMatch(/^-NOPERM .*boundary/);
    expect(out[6]).toBe('QUEUED');
    expect(out[7]).toMatch(/^-EXECABORT/);
    expect(await server(0, 'GET', 'secret')).toBe('db0-value');
    expect(await server(3, 'GET', 'secret')).toBe('');
  });

  it('scripts: refused without a grant; with one, the backend user pinned to DB 3 stops SELECT 0 inside them', async () => {
    const ops = await raw('ops');
    const leak = "redis.call('SELECT', '0'); return redis.call('GET', 'secret')";
    const [refused] = await exchange(ops, pipeline([['EVAL', leak, '0']]), 1);
    expect(refused).toMatch(/^-NOPERM .*DB number.*allow\.redisScripting/);
    const alice = await raw('alice');
    const out = await exchange(
      alice,
      pipeline([
        ['AUTH', PINNED.user, 'x'],
        ['EVAL', leak, '0'],
        ['EVAL', "return redis.call('GET', 'mine')", '0'],
      ]),
      3,
    );
    expect(out[0]).toBe('OK');
    expect(out[1]).toMatch(/^-ERR .*can't run this command/);
    expect(out[2]).toBe('db3-value');
  });
});

describe('standalone, Database on DB 3: what the server logs of every DB', () => {
  it("SLOWLOG GET is refused: it shows other DBs' commands with their arguments", async () => {
    await server(0, 'CONFIG', 'SET', 'slowlog-log-slower-than', '0');
    try {
      await server(0, 'SET', 'db0:slow', 'db0-slow-value');
      const ops = await raw('ops');
      const [got, len] = await exchange(
        ops,
        pipeline([
          ['SLOWLOG', 'GET', '128'],
          ['SLOWLOG', 'LEN'],
        ]),
        2,
      );
      expect(JSON.stringify(got)).not.toContain('db0-slow-value');
      expect(got).toMatch(
        /^-NOPERM drawbridge: SLOWLOG GET shows every DB's commands and values, and this Database is DB 3 of a standalone server .*allow\.redisServerWide: true$/,
      );
      expect(typeof len).toBe('number'); // how many, not what
    } finally {
      await server(0, 'CONFIG', 'SET', 'slowlog-log-slower-than', '10000');
    }
  });
});

describe('standalone, Database on DB 3: functions every DB shares', () => {
  const lib = "#!lua name=db0lib\nredis.register_function('db0f', function() return 'db0' end)";

  it('FUNCTION DELETE/FLUSH/KILL and SCRIPT FLUSH/KILL need allow.redisScripting: they act on every DB', async () => {
    await server(0, 'FUNCTION', 'LOAD', 'REPLACE', lib);
    // alice's developer role allows everything but @dangerous, FUNCTION DELETE/FLUSH (@write) too.
    const alice = await raw('alice');
    const out = await exchange(
      alice,
      pipeline([
        ['FUNCTION', 'DELETE', 'db0lib'],
        ['FUNCTION', 'FLUSH'],
      ]),
      2,
    );
    expect(await server(0, 'FCALL', 'db0f', '0')).toBe('db0');
    for (const [i, name] of ['DELETE', 'FLUSH'].entries()) {
      expect(out[i]).toMatch(
        new RegExp(
          `^-NOPERM drawbridge: FUNCTION ${name} changes the functions every DB of the server shares, and .*allow\\.redisScripting: true`,
        ),
      );
    }
    // The script cache and the script running now are the server's too.
    const sha = await server(0, 'SCRIPT', 'LOAD', 'return 1');
    const more = await exchange(
      alice,
      pipeline([
        ['SCRIPT', 'FLUSH'],
        ['SCRIPT', 'KILL'],
        ['FUNCTION', 'KILL'],
      ]),
      3,
    );
    expect(await server(0, 'SCRIPT', 'EXISTS', sha)).toBe('1');
    expect(more[0]).toMatch(
      /^-NOPERM drawbridge: SCRIPT FLUSH empties the script cache every DB of the server shares, and /,
    );
    for (const [i, name] of ['SCRIPT KILL', 'FUNCTION KILL'].entries()) {
      expect(more[i + 1]).toMatch(
        new RegExp(
          `^-NOPERM drawbridge: ${name} stops the script or function running now, whichever DB's session runs it, and `,
        ),
      );
    }
    // With the grant (alice as the pinned user), it is the backend's to decide: relayed.
    const granted = await exchange(
      alice,
      pipeline([
        ['AUTH', PINNED.user, 'x'],
        ['FUNCTION', 'DELETE', 'nosuchlib'],
      ]),
      2,
    );
    expect(granted).toEqual(['OK', '-ERR Library not found']);
  });
});

describe('cluster: DB 0 only', () => {
  it('SELECT 0 is answered; other DBs, SWAPDB, MOVE and COPY ... DB n are refused', async () => {
    const alice = await cluster.raw('ops');
    sockets.push(alice);
    const out = await exchange(
      alice,
      pipeline([
        ['SET', 'c:k', 'v'],
        ['SELECT', '0'],
        ['SELECT', '1'],
        ['SWAPDB', '0', '1'],
        ['MOVE', 'c:k', '1'],
        ['COPY', 'c:k', 'c:k2', 'DB', '1'],
        ['GET', 'c:k'],
      ]),
      7,
    );
    expect(out.slice(0, 2)).toEqual(['OK', 'OK']);
    for (const r of out.slice(2, 6)) expect(r).toMatch(/^-NOPERM drawbridge: Redis Cluster has only DB 0/);
    expect(out[6]).toBe('v');
  });
});
