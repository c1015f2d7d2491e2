// Hostile: secrets sent in Redis commands must never reach the audit log — whether the command ran,
// was refused by a role, or failed in the server. Every secret-bearing form is played through the
// real agent against a real Redis 7, then the real audit file is read as text.
// And each command's line is its own: the parser fills one command object per session again for every
// command, and whatever keeps a command past its parse (the queue while the backend connects, the
// agent's own commands, a guard) takes a copy; a mix-up would let one command's arguments reach
// another's audit line, rule check or backend write.
import { readFile } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestAgent } from '../../support/agent.js';
import { accessRole, databaseUser } from '../../support/redis.js';
import { type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { exchange, pipeline } from './resp.js';

let f: RedisFixture;
/** ops here may also run what acts on the whole server (CONFIG SET, ACL SETUSER): allow.redisServerWide. */
let agent: TestAgent;
const sockets: TLSSocket[] = [];

beforeAll(async () => {
  f = await startRedisFixture();
  const docs = redisDocs(f.redis).filter(
    (d) => (d as { metadata: { name: string } }).metadata.name !== 'ops',
  );
  agent = await f.startAgent([
    ...docs,
    accessRole('server-admin', { databaseLabels: { env: '*' }, databaseUsers: ['*'], redisServerWide: true }),
    databaseUser('ops', ['admin', 'server-admin']),
  ]);
}, 60_000);

afterAll(async () => {
  sockets.forEach((s) => s.destroy());
  await f?.stop();
});

const secret = (n: number) => `s3cret-${n}-xyzzy`;
const HASH = 'a'.repeat(60) + '4f2e';

describe('audit redaction', () => {
  it('no secret of AUTH, HELLO AUTH, CONFIG SET, ACL SETUSER or MIGRATE AUTH/AUTH2 is written, run or refused', async () => {
    const ops = await f.rawAt(agent.port, 'ops');
    const alice = await f.rawAt(agent.port, 'alice');
    sockets.push(ops, alice);
    // ops may run everything: these run (or fail in the server) and are audited as commands.
    const opsCommands = [
      ['CONFIG', 'SET', 'masterauth', secret(1)],
      ['CONFIG', 'SET', 'PrimaryAuth', secret(2)], // Valkey's name; Redis 7 refuses it, the audit line stays
      ['CONFIG', 'SET', 'maxmemory-policy', 'noeviction', 'masterauth', secret(3)],
      ['ACL', 'SETUSER', 'redaction-tmp', 'on', `>${secret(4)}`, `#${HASH}`, `<${secret(5)}`, '~*', '+get'],
      ['ACL', 'SETUSER', 'redaction-tmp', `on >${secret(6)}`], // one argument holding a password rule
      ['ACL', 'SETUSER', 'redaction-tmp', `(~k >${secret(7)})`],
      ['MIGRATE', '127.0.0.1', '1', '', '0', '100', 'COPY', 'AUTH', secret(8), 'KEYS', 'a'],
      ['MIGRATE', '127.0.0.1', '1', '', '0', '100', 'AUTH2', 'someone', secret(9), 'KEYS', 'a'],
      ['HELLO', '2', 'AUTH', 'app', secret(10)],
      ['AUTH', 'app', secret(11)],
      ['AUTH', 'admin', secret(12)],
    ];
    await exchange(ops, pipeline(opsCommands), opsCommands.length);
    await exchange(ops, `CONFIG SET masterauth ${secret(13)}\r\n`, 1); // inline
    // alice's roles deny @dangerous: these are refused and audited as command.denied, args included.
    const aliceCommands = [
      ['CONFIG', 'SET', 'requirepass', secret(14)],
      ['CONFIG', 'SET', 'primaryauth', secret(15), 'tls-key-file-pass', secret(16)],
      ['ACL', 'SETUSER', 'x', `>${secret(17)}`],
      ['AUTH', 'admin', secret(18)],
      ['HELLO', '3', 'AUTH', 'app', secret(19)],
    ];
    await exchange(alice, pipeline(aliceCommands), aliceCommands.length);
    await f.redis.cli(['CONFIG', 'SET', 'masterauth', '']);
    await f.redis.cli(['ACL', 'DELUSER', 'redaction-tmp']);
    await sleep(500);

    const text = await readFile(agent.auditPath, 'utf8');
    for (let n = 1; n <= 19; n++) expect(text, `secret ${n} is in the audit log`).not.toContain(secret(n));
    expect(text).not.toContain(HASH);
    // The commands themselves are there, with the secrets' places marked.
    const events = text
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const of = (type: string, command: string) =>
      events.filter((e) => e.type === type && e.command === command).map((e) => e.args);
    expect(of('command', 'config|set')).toContainEqual(['SET', 'masterauth', '[redacted]']);
    expect(of('command', 'config|set')).toContainEqual(['SET', 'PrimaryAuth', '[redacted]']);
    expect(of('command', 'acl|setuser')).toContainEqual([
      'SETUSER',
      'redaction-tmp',
      'on',
      '[redacted]',
      '[redacted]',
      '[redacted]',
      '~*',
      '+get',
    ]);
    expect(of('command', 'migrate')).toContainEqual([
      '127.0.0.1',
      '1',
      '',
      '0',
      '100',
      'COPY',
      'AUTH',
      '[redacted]',
      'KEYS',
      'a',
    ]);
    expect(of('command.denied', 'config|set')).toContainEqual([
      'SET',
      'primaryauth',
      '[redacted]',
      'tls-key-file-pass',
      '[redacted]',
    ]);
  });
});

type Line = [type: string, command: string, args: string[]];

/** The session's command events, in order, once `count` of them are in the audit file. */
async function commandLines(
  sessionOf: (e: Record<string, unknown>) => boolean,
  count: number,
): Promise<Line[]> {
  let lines: Line[] = [];
  for (let i = 0; i < 100 && lines.length < count; i++) {
    if (i > 0) await sleep(100);
    // The file appears with the agent's first audit batch; a line still being written is read next time.
    const text = await readFile(f.agent.auditPath, 'utf8').catch(() => '');
    const events = text
      .split('\n')
      .slice(0, -1)
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const first = events.find(sessionOf);
    lines = events
      .filter((e) => first !== undefined && e.sessionId === first.sessionId)
      .filter((e) => e.type === 'command' || e.type === 'command.denied')
      .map((e) => [e.type as string, e.command as string, e.args as string[]]);
  }
  return lines;
}

describe('one reused command object per session', () => {
  it('a pipeline queued while the backend connects, then one relayed in place: every command is audited, checked and run as sent', async () => {
    const alice = await f.raw('alice'); // developer: @dangerous denied
    sockets.push(alice);
    // One write before any backend connection: the first command connects, the others wait queued.
    const first = [
      ['SET', 'reuse:a', 'value-a'],
      ['GET', 'reuse:a'],
      ['SELECT', '7'], // the DB boundary guard refuses it
      ['FLUSHALL'], // the role refuses it
      ['SET', 'reuse:b', 'value-b', 'EX', '100'],
      ['CLIENT', 'REPLY', 'ON'], // answered through the agent's own command path
      ['MULTI'],
      ['SET', 'reuse:c', 'value-c'],
      ['EXEC'],
      ['ECHO', 'end-of-first'],
    ];
    const replies1 = await exchange(alice, pipeline(first), first.length);
    expect(replies1).toEqual([
      'OK',
      'value-a',
      expect.stringMatching(/^-NOPERM .*SELECT 7/),
      expect.stringMatching(/^-NOPERM /),
      'OK',
      'OK',
      'OK',
      'QUEUED',
      ['OK'],
      'end-of-first',
    ]);
    // Connected now: these are relayed with the parser's reused object, a guard and a denial among them.
    const second: string[][] = [];
    for (let i = 0; i < 40; i++) second.push(['SET', `reuse:k${i}`, `v${i}`]);
    second.splice(10, 0, ['SWAPDB', '0', '1'], ['SELECT', '0'], ['GET', 'reuse:k3']);
    const replies2 = await exchange(alice, pipeline(second), second.length);
    expect(replies2[10]).toMatch(/^-NOPERM /);
    expect(replies2.slice(11, 13)).toEqual(['OK', 'v3']);

    const denied = new Set(['select|7', 'flushall', 'swapdb']);
    const want: Line[] = [...first, ...second].map(([name, ...args]) => {
      const command = name === 'CLIENT' ? 'client|reply' : name!.toLowerCase();
      const refused = denied.has(command) || denied.has(`${command}|${args[0]}`);
      return [
        refused ? 'command.denied' : 'command',
        command,
        command === 'client|reply' ? ['REPLY', 'ON'] : args,
      ];
    });
    const lines = await commandLines(
      (e) => e.command === 'set' && (e.args as string[])[0] === 'reuse:a',
      want.length,
    );
    expect(lines).toEqual(want);
    for (let i = 0; i < 40; i++) expect((await f.redis.cli(['GET', `reuse:k${i}`])).trim()).toBe(`v${i}`);
    expect((await f.redis.cli(['GET', 'reuse:c'])).trim()).toBe('value-c');
  });
});
