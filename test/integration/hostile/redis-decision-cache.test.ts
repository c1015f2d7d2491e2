// Hostile: what a Redis session remembers of its last command must never outlive what it was decided
// for. The session keeps the last command name's rule decision (SessionCommands), and its audit keeps
// the session's fields and each command name's line head (SessionAudit). A person allowed one command
// tries to get another past that memory: a pipeline that switches database user (AUTH, HELLO AUTH)
// between two commands of one name, container subcommands whose names have the same length
// (CONFIG GET / CONFIG SET, CLIENT LIST / CLIENT KILL) in any case, a policy change between two
// commands of one name. Pipelines go in one write, through the real agent to Redis 7; the replies, the
// server's state and the session's audit lines are checked exactly.
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../../src/agent/audit.js';
import type { TestAgent } from '../../support/agent.js';
import { REDIS_USERS, accessRole, databaseUser, redisDatabaseDocs } from '../../support/redis.js';
import { type RedisFixture, startRedisFixture } from '../redis/fixture.js';
import { until } from './audit-support.js';
import { exchange, pipeline } from './resp.js';

let f: RedisFixture;
let agent: TestAgent;
const sockets: TLSSocket[] = [];

const labels = { databaseLabels: { env: '*' } };
// Not @connection: CLIENT KILL is in it.
const RW_ALLOWS = ['@read', '@write', 'ping', 'hello', 'config', 'client|list', 'client|id'];
/** alice: as `default` reads, writes, CONFIG but CONFIG SET, CLIENT LIST and ID; as `reader` reads only. */
function docs(rwDenies: string[] = ['config|set']): object[] {
  return [
    ...redisDatabaseDocs({
      name: 'cache',
      uri: `rediss://${f.redis.host}:${f.redis.tlsPort}`,
      labels: { env: 'prod' },
      caPem: f.redis.ca.certPem,
      auth: 'password',
      login: Object.fromEntries(Object.entries(REDIS_USERS).map(([u, v]) => [u, v.password])),
    }),
    accessRole(
      'rw',
      // CONFIG and CLIENT LIST act on the whole (standalone) server: allow.redisServerWide.
      { ...labels, databaseUsers: ['default'], redisCommands: RW_ALLOWS, redisServerWide: true },
      { redisCommands: rwDenies },
    ),
    accessRole('ro', { ...labels, databaseUsers: ['reader'], redisCommands: ['@read', '@connection'] }),
    databaseUser('alice', ['rw', 'ro']),
  ];
}

beforeAll(async () => {
  f = await startRedisFixture();
  agent = await f.startAgent(docs());
}, 60_000);

afterAll(async () => {
  sockets.forEach((s) => s.destroy());
  await f?.stop();
});

async function session(): Promise<{ socket: TLSSocket; id: string }> {
  const socket = await f.rawAt(agent.port, 'alice');
  sockets.push(socket);
  // A certificate holder's session starts with its first command; its start names the client's port.
  expect(await exchange(socket, pipeline([['PING']]), 1)).toEqual(['PONG']);
  const address = `${socket.localAddress}:${socket.localPort}`;
  let start: AuditEvent | undefined;
  await until('session.start', async () => {
    const events = await agent.auditEvents();
    start = events.find((e) => e.type === 'session.start' && e.clientAddress === address);
    return start !== undefined;
  });
  return { socket, id: start!.sessionId! };
}

/** The session's events after session.start, as [type, command, dbUser, args, reason?]. */
async function lines(id: string, count: number): Promise<unknown[][]> {
  let events: AuditEvent[] = [];
  const read = async () =>
    (events = (await agent.auditEvents()).filter((e) => e.sessionId === id && e.type !== 'session.start'));
  await until(`${count} audit lines`, async () => (await read()).length >= count);
  return events.map((e) => {
    const line = [e.type, e.command, e.dbUser, e.args];
    return e.reason === undefined ? line : [...line, e.reason];
  });
}

const RO_REFUSAL = 'no role allows "set" (role "ro" allows ["@read","@connection"])';

describe('the decision and audit head kept for the last command name', () => {
  it('a user switch between two commands of one name: each is decided and audited as its own user', async () => {
    await f.redis.cli(['DEL', 'dc:k']);
    const { socket, id } = await session();
    const out = await exchange(
      socket,
      pipeline([
        ['SET', 'dc:k', '1'],
        ['AUTH', 'reader', 'x'],
        ['SET', 'dc:k', '2'],
        ['set', 'dc:k', '3'],
        ['GET', 'dc:k'],
        ['HELLO', '2', 'AUTH', 'default', 'x'],
        ['SET', 'dc:k', '4'],
        ['GET', 'dc:k'],
      ]),
      8,
    );
    const denied = `-NOPERM drawbridge: ${RO_REFUSAL}`;
    expect(out.slice(0, 5)).toEqual(['OK', 'OK', denied, denied, '1']);
    expect(out.slice(6)).toEqual(['OK', '4']);
    expect(await lines(id, 10)).toEqual([
      ['command', 'ping', 'default', []],
      ['command', 'set', 'default', ['dc:k', '1']],
      ['command', 'auth', 'reader', ['reader', '[redacted]']],
      ['command.denied', 'set', 'reader', ['dc:k', '2'], RO_REFUSAL],
      ['command.denied', 'set', 'reader', ['dc:k', '3'], RO_REFUSAL],
      ['command', 'get', 'reader', ['dc:k']],
      ['command', 'auth', 'default', ['default', '[redacted]']],
      ['command', 'hello', 'default', ['2']],
      ['command', 'set', 'default', ['dc:k', '4']],
      ['command', 'get', 'default', ['dc:k']],
    ]);
  });

  it('CONFIG GET / CONFIG SET and CLIENT LIST / CLIENT KILL in any case, interleaved: only the allowed run', async () => {
    const victim = await f.rawAt(agent.port, 'alice');
    sockets.push(victim);
    const [victimId] = await exchange(victim, pipeline([['CLIENT', 'ID']]), 1);
    const { socket, id } = await session();
    const before = await f.redis.cli(['CONFIG', 'GET', 'slowlog-max-len']);
    const vid = String(victimId);
    const out = await exchange(
      socket,
      pipeline([
        ['CONFIG', 'GET', 'slowlog-max-len'],
        ['CONFIG', 'SET', 'slowlog-max-len', '777'],
        ['config', 'set', 'slowlog-max-len', '778'],
        ['CoNfIg', 'GeT', 'slowlog-max-len'],
        ['cOnFiG', 'sEt', 'slowlog-max-len', '779'],
        ['CLIENT', 'LIST', 'ID', vid],
        ['CLIENT', 'KILL', 'ID', vid],
        ['client', 'kill', 'ID', vid],
        ['CLIENT', 'list', 'ID', vid],
      ]),
      9,
    );
    const configSet = 'role "rw" denies "config|set"';
    const clientKill = `no role allows "client|kill" (role "rw" allows ${JSON.stringify(RW_ALLOWS)})`;
    const setDenied = `-NOPERM drawbridge: ${configSet}`;
    const killDenied = `-NOPERM drawbridge: ${clientKill}`;
    expect(out[0]).toEqual(before.trim().split('\n'));
    expect(out.slice(1, 3)).toEqual([setDenied, setDenied]);
    expect(out[3]).toEqual(before.trim().split('\n'));
    expect(out[4]).toBe(setDenied);
    expect(out[5]).toMatch(new RegExp(`^id=${vid} `));
    expect(out.slice(6, 8)).toEqual([killDenied, killDenied]);
    expect(out[8]).toMatch(new RegExp(`^id=${vid} `));
    // Nothing refused reached the server: the setting is as it was, the victim still answers.
    expect(await f.redis.cli(['CONFIG', 'GET', 'slowlog-max-len'])).toBe(before);
    expect(await exchange(victim, pipeline([['PING']]), 1)).toEqual(['PONG']);
    const slowlog = (n: string) => ['slowlog-max-len', n];
    expect((await lines(id, 10)).slice(1)).toEqual([
      ['command', 'config|get', 'default', ['GET', 'slowlog-max-len']],
      ['command.denied', 'config|set', 'default', ['SET', ...slowlog('777')], configSet],
      ['command.denied', 'config|set', 'default', ['set', ...slowlog('778')], configSet],
      ['command', 'config|get', 'default', ['GeT', 'slowlog-max-len']],
      ['command.denied', 'config|set', 'default', ['sEt', ...slowlog('779')], configSet],
      ['command', 'client|list', 'default', ['LIST', 'ID', vid]],
      ['command.denied', 'client|kill', 'default', ['KILL', 'ID', vid], clientKill],
      ['command.denied', 'client|kill', 'default', ['kill', 'ID', vid], clientKill],
      ['command', 'client|list', 'default', ['list', 'ID', vid]],
    ]);
  });

  it('a policy change between two commands of one name applies to the second, both ways', async () => {
    const { socket, id } = await session();
    const set = (v: string) => exchange(socket, pipeline([['SET', 'dc:p', v]]), 1).then(([r]) => r);
    expect(await set('1')).toBe('OK');
    await agent.writeDocs(docs(['config|set', '@write']));
    const refusal = 'role "rw" denies "@write"';
    try {
      let n = 1;
      await until('SET refused', async () => (await set(String(++n))) === `-NOPERM drawbridge: ${refusal}`);
      expect(await f.redis.cli(['GET', 'dc:p'])).toBe(`${n - 1}\n`);
    } finally {
      await agent.writeDocs(docs());
    }
    await until('SET allowed again', async () => (await set('after')) === 'OK');
    expect(await f.redis.cli(['GET', 'dc:p'])).toBe('after\n');
    const events = await lines(id, 4);
    const firstDenied = events.findIndex((e) => e[0] === 'command.denied');
    // Allowed until the change, refused from then until it was undone, then allowed.
    expect(events.slice(firstDenied - 1, firstDenied + 1).map((e) => e[0])).toEqual([
      'command',
      'command.denied',
    ]);
    expect(events[firstDenied]).toEqual([
      'command.denied',
      'set',
      'default',
      ['dc:p', expect.any(String)],
      refusal,
    ]);
    expect(events.at(-1)).toEqual(['command', 'set', 'default', ['dc:p', 'after']]);
    expect(events.at(-2)![0]).toBe('command.denied');
  });
});
