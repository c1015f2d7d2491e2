// Hostile: a session on a Database for DB 3 of a real standalone Redis 7, its roles allowing every
// command (ops), reaching past its DB by what acts on or shows the whole server: CONFIG, ACL, CLIENT
// KILL/PAUSE/UNBLOCK, DEBUG, SAVE, FUNCTION LIST; CLIENT LIST, INFO and PUBSUB CHANNELS listing other
// DBs; keyspace notifications of DB 0 (SUBSCRIBE, PSUBSCRIBE `*`, `__key*`) and forged ones (PUBLISH).
// Each is refused (or cut to DB 3) naming allow.redisServerWide, which mallory's role sets.
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestAgent } from '../../support/agent.js';
import { REDIS_USERS, accessRole, databaseUser } from '../../support/redis.js';
import { type PersonName, type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { exchange, pipeline, untilClosed } from './resp.js';

let f: RedisFixture;
let db3: TestAgent;
const sockets: TLSSocket[] = [];
const direct: Redis[] = [];

const REFUSED =
  /^-NOPERM drawbridge: .*this Database is DB 3 of a standalone server \(spec\.uri\), whose other DBs may be other Databases'; commands that act on or show the whole server need a role with allow\.redisServerWide: true$/;

/** A tenant's backend user: its channels are `app:*`; it may read its own ACL (ACL GETUSER). */
const TENANT = { user: 'tenant3', password: 'tenant3-pw' };

function db3Docs(wide = true): object[] {
  const login = Object.fromEntries(Object.entries(REDIS_USERS).map(([u, v]) => [u, v.password]));
  return [
    ...redisDocs(f.redis, { auth: 'password', login: { ...login, [TENANT.user]: TENANT.password } }).map(
      (d) => {
        const doc = d as { kind: string; spec: { uri: string } };
        return doc.kind === 'Database' ? { ...doc, spec: { ...doc.spec, uri: `${doc.spec.uri}/3` } } : d;
      },
    ),
    accessRole('server-admin', {
      databaseLabels: { env: '*' },
      databaseUsers: ['admin'],
      redisServerWide: wide,
    }),
    databaseUser('mallory', ['server-admin']),
    accessRole('tenant', { databaseLabels: { env: '*' }, databaseUsers: [TENANT.user] }),
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'DatabaseUser',
      metadata: { name: 'alice-tenant' },
      spec: { subjects: [{ kind: 'User', name: 'alice' }], roles: ['tenant'] },
    },
  ];
}

/** A client straight to the server on DB `db` (another Database's, as far as the agent knows). */
async function onServer(db: number, name?: string): Promise<Redis> {
  const r = new Redis({
    host: f.redis.host,
    port: f.redis.plainPort,
    username: 'admin',
    password: 'admin-pw',
    db,
    connectionName: name,
    maxRetriesPerRequest: 0,
  });
  direct.push(r);
  await r.ping();
  return r;
}

async function raw(person: PersonName): Promise<TLSSocket> {
  const s = await f.rawAt(db3.port, person);
  sockets.push(s);
  return s;
}

beforeAll(async () => {
  f = await startRedisFixture();
  const { user, password } = TENANT;
  await f.redis.cli([
    'ACL',
    'SETUSER',
    user,
    'on',
    `>${password}`,
    '~*',
    '&app:*',
    '+@all',
    '-@dangerous',
    '+acl|getuser',
  ]);
  db3 = await f.startAgent(db3Docs());
}, 120_000);

afterAll(async () => {
  sockets.forEach((s) => s.destroy());
  direct.forEach((r) => r.disconnect());
  await f?.stop();
});

describe('standalone, Database on DB 3, roles allowing every command', () => {
  it('what acts on the whole server is refused, naming allow.redisServerWide; the server is untouched', async () => {
    const victim = await onServer(0, 'db0-victim');
    const victimId = String(await victim.client('ID'));
    await victim.set('db0:secret', 'v');
    // Another Database's denied command, with its key name, in the server's ACL log.
    await f.redis.cli(['ACL', 'LOG', 'RESET']);
    await f.redis.cli(['-n', '0', 'SET', 'db0:acl-secret', 'x'], 'reader').catch(() => undefined);
    const attempts = [
      ['CONFIG', 'SET', 'slowlog-max-len', '7'],
      ['CONFIG', 'GET', 'requirepass'],
      ['ACL', 'SETUSER', 'intruder', 'on', '>pw', '~*', '+@all'],
      ['ACL', 'LOG'],
      ['ACL', 'LIST'],
      ['CLIENT', 'KILL', 'ID', victimId],
      ['CLIENT', 'PAUSE', '100'],
      ['CLIENT', 'UNBLOCK', victimId],
      ['DEBUG', 'SET-ACTIVE-EXPIRE', '0'],
      ['SAVE'],
      ['BGSAVE'],
      ['FLUSHALL'],
      ['SLOWLOG', 'RESET'],
      ['MEMORY', 'STATS'],
      ['LATENCY', 'LATEST'],
      ['REPLICAOF', '127.0.0.1', '1'],
      ['SLAVEOF', 'localhost', '1'],
    ];
    const ops = await raw('ops');
    const out = await exchange(ops, pipeline([...attempts, ['GET', 'mine']]), attempts.length + 1);
    for (const [i, r] of out.slice(0, -1).entries()) {
      expect(r, attempts[i]!.join(' ')).toMatch(REFUSED);
    }
    expect(out[0]).toMatch(
      /^-NOPERM drawbridge: CONFIG SET changes the configuration every DB of the server runs with/,
    );
    expect(out[3]).toMatch(/^-NOPERM drawbridge: ACL LOG shows every DB's denied commands/);
    expect(out.at(-1)).toBeNull();
    expect(JSON.stringify(out)).not.toMatch(/acl-secret|intruder|default-pw/);
    expect(await f.redis.cli(['CONFIG', 'GET', 'slowlog-max-len'])).toMatch(/\n128\s*$/);
    expect(await f.redis.cli(['ACL', 'USERS'])).not.toContain('intruder');
    expect(await victim.get('db0:secret')).toBe('v'); // not killed, not flushed
    expect(await f.redis.cli(['ROLE'])).toMatch(/^master/);
    await sleep(200);
    const denied = (await db3.auditEvents()).filter((e) => e.type === 'command.denied' && e.user === 'ops');
    expect(denied.map((e) => e.command)).toEqual([
      'config|set',
      'config|get',
      'acl|setuser',
      'acl|log',
      'acl|list',
      'client|kill',
      'client|pause',
      'client|unblock',
      'debug',
      'save',
      'bgsave',
      'flushall',
      'slowlog|reset',
      'memory|stats',
      'latency|latest',
      'replicaof',
      'slaveof',
    ]);
  });

  it("FUNCTION LIST and DUMP (every DB's code) need the scripting rule, as FUNCTION DELETE does", async () => {
    await f.redis.cli([
      'FUNCTION',
      'LOAD',
      'REPLACE',
      "#!lua name=db0lib\nredis.register_function('db0f', function() return 'db0-code' end)",
    ]);
    const ops = await raw('ops');
    const out = await exchange(
      ops,
      pipeline([
        ['FUNCTION', 'LIST', 'WITHCODE'],
        ['FUNCTION', 'DUMP'],
        ['FUNCTION', 'STATS'],
      ]),
      3,
    );
    expect(out[0]).toMatch(
      /^-NOPERM drawbridge: FUNCTION LIST shows the functions every DB of the server shares, with their code, and .*allow\.redisScripting: true/,
    );
    expect(out[1]).toMatch(/^-NOPERM drawbridge: FUNCTION DUMP /);
    expect(out[2]).toMatch(/^-NOPERM drawbridge: FUNCTION STATS /);
  });

  it("CLIENT LIST and INFO show only DB 3's clients and keyspace (RESP2 and RESP3); refused inside MULTI", async () => {
    await onServer(0, 'db0-app');
    const db0 = await onServer(0);
    await db0.set('db0:k', '1');
    await (await onServer(3)).set('mine', 'db3');
    for (const hello of [
      ['HELLO', '2'],
      ['HELLO', '3'],
    ]) {
      const ops = await raw('ops');
      const [, list, info, all] = await exchange(
        ops,
        pipeline([hello, ['CLIENT', 'LIST'], ['INFO', 'keyspace'], ['INFO']]),
        4,
      );
      const lines = (list as string).trim().split('\n');
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) expect(line).toMatch(/ db=3 /);
      expect(list).toMatch(/cmd=client\|list/); // this session's own connection
      expect(list).not.toContain('db0-app');
      expect(info).toMatch(/^# Keyspace\r\ndb3:keys=\d+/);
      expect(info).not.toMatch(/db0:/);
      expect(all).toMatch(/\r\ndb3:keys=/);
      expect(all).not.toMatch(/\r\ndb0:/);
      expect(all).toMatch(/redis_version:7/);
    }
    const ops = await raw('ops');
    const out = await exchange(ops, pipeline([['MULTI'], ['CLIENT', 'LIST'], ['EXEC']]), 3);
    expect(out[1]).toMatch(/^-NOPERM drawbridge: CLIENT LIST inside MULTI would show every DB's/);
    expect(out[2]).toMatch(/^-EXECABORT/);
  });
});

describe("standalone, Database on DB 3: pub/sub is server-wide, other DBs' keyspace notifications are not this Database's", () => {
  beforeAll(async () => {
    await f.redis.cli(['CONFIG', 'SET', 'notify-keyspace-events', 'KEA']);
  });

  it("SUBSCRIBE and PSUBSCRIBE reaching DB 0's notifications are refused; DB 3's are heard", async () => {
    const ops = await raw('ops');
    const out = await exchange(
      ops,
      pipeline([
        ['SUBSCRIBE', 'orders', '__keyspace@0__:db0:secret'],
        ['PSUBSCRIBE', '*'],
        ['PSUBSCRIBE', '__key*'],
        ['PSUBSCRIBE', '__keyevent@[0-2]__:*'],
        ['PSUBSCRIBE', '__keyspace@3__:*'],
      ]),
      5,
    );
    expect(out[0]).toMatch(
      /^-NOPERM drawbridge: SUBSCRIBE "__keyspace@0__:db0:secret" is another DB's keyspace notification channel .*subscribe to this DB's \(__keyspace@3__:\*, __keyevent@3__:\*\), or: .*allow\.redisServerWide: true$/,
    );
    for (const [i, p] of ['*', '__key*', '__keyevent@[0-2]__:*'].entries()) {
      expect(out[i + 1]).toMatch(
        new RegExp(
          `^-NOPERM drawbridge: PSUBSCRIBE "${p.replace(/[*[\]]/g, '\\$&')}" matches other DBs' keyspace notification channels`,
        ),
      );
    }
    expect(out[4]).toEqual(['psubscribe', '__keyspace@3__:*', 1]);
    const messages = exchange(ops, Buffer.alloc(0), 1);
    await (await onServer(0)).set('db0:secret', 'x');
    await (await onServer(3)).set('db3:mine', 'y');
    expect(await messages).toEqual([['pmessage', '__keyspace@3__:*', '__keyspace@3__:db3:mine', 'set']]);
  });

  it("PUBLISH to DB 0's notification channel (a forged event) is refused; other channels are the server's", async () => {
    const listener = await onServer(0);
    const forged: string[] = [];
    listener.on('message', (channel: string, message: string) => forged.push(`${channel} ${message}`));
    await listener.subscribe('__keyevent@0__:expired', 'shared');
    const ops = await raw('ops');
    const out = await exchange(
      ops,
      pipeline([
        ['PUBLISH', '__keyevent@0__:expired', 'db0:session:42'],
        ['PUBLISH', '__keyevent@3__:expired', 'db3:own'],
        ['PUBLISH', 'shared', 'hello'],
      ]),
      3,
    );
    expect(out[0]).toMatch(
      /^-NOPERM drawbridge: PUBLISH to "__keyevent@0__:expired" would forge another DB's keyspace notification, .*allow\.redisServerWide: true$/,
    );
    expect(out.slice(1)).toEqual([0, 1]);
    await sleep(200);
    expect(forged).toEqual(['shared hello']);
  });

  it("PUBSUB CHANNELS leaves out DB 0's notification channels (their key names) and what the user's ACL channels do not match", async () => {
    await (await onServer(0)).subscribe('__keyspace@0__:db0:customer:1234', 'shared-channel', 'app:orders');
    await (await onServer(0)).ssubscribe('app:shard', 'team2:shard');
    const ops = await raw('ops'); // as `default`: every channel (&*)
    const [channels] = await exchange(ops, pipeline([['PUBSUB', 'CHANNELS']]), 1);
    expect(channels).toContain('shared-channel');
    expect(JSON.stringify(channels)).not.toContain('customer');
    // Redis lists every channel whatever the user's ACL says: tenant3 sees only its app:* ones.
    const alice = await raw('alice');
    const out = await exchange(
      alice,
      pipeline([
        ['AUTH', TENANT.user, 'x'],
        ['PUBSUB', 'CHANNELS'],
        ['PUBSUB', 'SHARDCHANNELS'],
        ['AUTH', 'app', 'x'], // may not read its ACL: the list cannot be cut, so it is refused
        ['PUBSUB', 'CHANNELS', '*'],
      ]),
      5,
    );
    expect(out.slice(0, 3)).toEqual(['OK', ['app:orders'], ['app:shard']]);
    expect(out[3]).toBe('OK');
    expect(out[4]).toMatch(
      /^-NOPERM drawbridge: PUBSUB CHANNELS lists every channel of the server, whoever may use it, and the agent cannot read database user "app"'s channel patterns \(ACL GETUSER: .*let it run ACL GETUSER\), .*allow\.redisServerWide: true$/,
    );
  });

  it('allow.redisServerWide (mallory): the whole server, as far as the command rules allow', async () => {
    await onServer(0, 'db0-seen');
    const mallory = await raw('mallory');
    const out = await exchange(
      mallory,
      pipeline([
        ['AUTH', 'admin', 'x'],
        ['CONFIG', 'GET', 'slowlog-max-len'],
        ['CLIENT', 'LIST'],
        ['PUBSUB', 'CHANNELS', '__keyspace@0__:*'],
        ['SELECT', '0'],
        ['PSUBSCRIBE', '__keyspace@0__:*'],
      ]),
      6,
    );
    expect(out.slice(0, 2)).toEqual(['OK', ['slowlog-max-len', '128']]);
    expect(out[2]).toContain('db0-seen');
    expect(out[3]).toContain('__keyspace@0__:db0:customer:1234');
    expect(out[4]).toMatch(/^-NOPERM drawbridge: the DB number is this Database's boundary/); // never another DB
    expect(out[5]).toEqual(['psubscribe', '__keyspace@0__:*', 1]);
    const message = exchange(mallory, Buffer.alloc(0), 1);
    await (await onServer(0)).set('db0:watched', 'x');
    expect(await message).toEqual([['pmessage', '__keyspace@0__:*', '__keyspace@0__:db0:watched', 'set']]);
    // The grant withdrawn while the session listens on DB 0's notifications: the session ends.
    const end = untilClosed(mallory);
    await db3.writeDocs(db3Docs(false));
    const { replies, closed } = await end;
    expect(closed).toBe(true);
    expect(JSON.stringify(replies.at(-1))).toMatch(
      /still listens on another DB's keyspace notifications \(\\"psubscribe\\" under allow\.redisServerWide\)/,
    );
  });
});
