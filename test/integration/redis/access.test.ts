// Who may do what through the agent, with real redis-cli and ioredis against real Redis 7: database
// users chosen by AUTH, command rules by name and by category learned from the backend, NOPERM
// naming the rule, audit events, and the HELLO handshake.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_USERS, accessRole } from '../../support/redis.js';
import { type RedisFixture, startRedisFixture } from './fixture.js';

let f: RedisFixture;

beforeAll(async () => {
  f = await startRedisFixture();
});

afterAll(async () => {
  await f?.stop();
});

async function until(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(200);
  }
}

/** redis-cli reading commands from stdin prints one reply per command (errors with a blank line after). */
const lines = (out: string) => out.split('\n').filter(Boolean);

describe('redis access through the agent', () => {
  it('alice works as default and app; @dangerous is refused with the rule; the session continues', async () => {
    const out = await f.cli(
      'alice',
      [],
      [
        'ACL WHOAMI',
        'SET greeting hello',
        'GET greeting',
        'FLUSHALL',
        'CONFIG GET maxmemory',
        'AUTH app x',
        'ACL WHOAMI',
        'GET greeting',
      ].join('\n'),
    );
    const [who, set, get, flush, config, auth, who2, get2] = lines(out);
    expect(who).toBe('default');
    expect([set, get]).toEqual(['OK', 'hello']);
    expect(flush).toMatch(/^NOPERM drawbridge: role "developer" denies "@dangerous"/);
    expect(config).toMatch(/^NOPERM .*"@dangerous"/);
    expect([auth, who2, get2]).toEqual(['OK', 'app', 'hello']);
  });

  it('AUTH to a database user the roles do not allow is refused and the user stays the same', async () => {
    const out = await f.cli('alice', [], ['AUTH app x', 'AUTH admin x', 'ACL WHOAMI'].join('\n'));
    const [ok, denied, who] = lines(out);
    expect(ok).toBe('OK');
    expect(denied).toMatch(/^NOPERM access to cache as database user "admin" denied/);
    expect(who).toBe('app');
  });

  it('rita may read but not write (allow list by category), as reader', async () => {
    const out = await f.cli(
      'rita',
      ['--user', 'reader', '--pass', 'ignored', '--no-auth-warning'],
      'GET greeting\nSET x 1\nCLIENT INFO\n',
    );
    const [get, set, info] = lines(out);
    expect(get).toBe('hello');
    expect(set).toMatch(
      /^NOPERM drawbridge: no role allows "set" \(role "readonly" allows \["@read","@connection"\]\)/,
    );
    expect(info).toContain(' user=reader ');
  });

  it('rita cannot be default; mallory has no DatabaseUser at all', async () => {
    expect(await f.cli('rita', ['PING'])).toMatch(/NOPERM access to cache as database user "default" denied/);
    expect(await f.cli('mallory', ['PING'])).toMatch(/is not a subject of any DatabaseUser/);
  });

  it('ops can be admin and run @dangerous commands; the whole server needs allow.redisServerWide', async () => {
    const out = await f.cli(
      'ops',
      ['--user', 'admin', '--pass', 'x', '--no-auth-warning'],
      'ACL WHOAMI\nDBSIZE\nKEYS nothing:*\nCONFIG GET maxclients\n',
    );
    expect(lines(out).slice(0, 1)).toEqual(['admin']);
    expect(lines(out).at(-1)).toMatch(
      /^NOPERM drawbridge: CONFIG GET shows the whole server's configuration, .* allow\.redisServerWide: true$/,
    );
  });

  it('HELLO 3 gets the backend’s RESP3 map, HELLO 2 the RESP2 one, HELLO 4 NOPROTO; ioredis (RESP3) works', async () => {
    const out = await f.cli('alice', [], 'HELLO 3\nHELLO 4\nHELLO 2 AUTH app x\n');
    const all = lines(out);
    // redis-cli prints a map's entries as `key value` lines, a RESP2 array one item per line.
    expect(all.slice(0, 3)).toEqual(['server redis', expect.stringMatching(/^version 7\./), 'proto 3']);
    expect(all[7]).toMatch(/^NOPROTO/);
    const hello = all.slice(8);
    expect(hello.slice(0, 6)).toEqual([
      'server',
      'redis',
      'version',
      expect.stringMatching(/^7\./),
      'proto',
      '2',
    ]);
    const client = f.ioredis('alice', { username: 'app', password: 'whatever' });
    expect(await client.call('ACL', 'WHOAMI')).toBe('app');
    await client.set('io', 'redis');
    expect(await client.get('io')).toBe('redis');
    await expect(client.flushall()).rejects.toThrow(/NOPERM/);
    client.disconnect();
  });

  it('audits session.start, commands (long values cut with a hash, passwords redacted), denials, session.end', async () => {
    // Longer than the default spec.audit.maxValueLength (4096).
    const big = 'v'.repeat(5000);
    await f.cli(
      'alice',
      ['--user', 'app', '--pass', 'secret-pw', '--no-auth-warning'],
      `SET audited ${big}\nFLUSHALL\n`,
    );
    await sleep(200);
    const events = (await f.agent.auditEvents()).filter(
      (e) => e.user === 'alice' && e.command !== 'command|docs',
    );
    const last = events.slice(events.findLastIndex((e) => e.type === 'session.start'));
    expect(last.map((e) => e.type)).toEqual([
      'session.start',
      'command',
      'command',
      'command.denied',
      'session.end',
    ]);
    expect(last[0]).toMatchObject({ protocol: 'redis', dbUser: 'app', identitySource: 'certificate' });
    expect(last[1]).toMatchObject({ command: 'auth', args: ['app', '[redacted]'] });
    expect(last[2]!.args).toEqual([
      'audited',
      expect.stringMatching(/^v{4096}…\[5000 bytes sha256:[0-9a-f]{64}\]$/),
    ]);
    expect(last[3]).toMatchObject({ command: 'flushall', reason: 'role "developer" denies "@dangerous"' });
    expect(last[4]).toMatchObject({ commands: 2, denied: 1 });
    expect(JSON.stringify(events)).not.toContain('secret-pw');
    expect(JSON.stringify(events)).not.toContain(REDIS_USERS.app.password);
  });

  it('audits a command too large to reserve room for (MSET of 20,000 keys) whole and in order', async () => {
    const client = f.ioredis('alice');
    const pairs = Array.from({ length: 20_000 }, (_, i) => [`big-mset:${i}`, `v${i}`]).flat();
    await client.mset(...pairs);
    await client.set('after-big-mset', '1');
    client.disconnect();
    await sleep(200);
    const events = (await f.agent.auditEvents()).filter((e) => e.type === 'command' && e.user === 'alice');
    const at = events.findLastIndex((e) => e.command === 'mset');
    expect(events[at]!.args).toEqual(pairs);
    expect(events[at + 1]).toMatchObject({ command: 'set', args: ['after-big-mset', '1'] });
  });

  it('a policy change re-checks live sessions: new command rules apply at once, revoked users are cut off', async () => {
    const { redisDocs } = await import('./fixture.js');
    const named = (d: object, kind: string, name: string) =>
      (d as { kind: string; metadata: { name: string } }).kind === kind &&
      (d as { metadata: { name: string } }).metadata.name === name;
    const alice = f.ioredis('alice');
    const raw = await f.raw('alice');
    let rawText = '';
    raw.on('data', (d: Buffer) => (rawText += d.toString()));
    const rawClosed = new Promise<void>((resolve) => raw.once('close', () => resolve()));
    raw.write('PING\r\n');
    await alice.set('before', '1');
    const docs = redisDocs(f.redis);
    const tighter = docs.map((d) =>
      named(d, 'AccessRole', 'developer')
        ? accessRole(
            'developer',
            { databaseLabels: { env: '*' }, databaseUsers: ['default', 'app'] },
            { redisCommands: ['@dangerous', '@write'] },
          )
        : d,
    );
    await f.agent.writeDocs(tighter);
    await until(async () => /@write/.test(await alice.set('after', '1').then(String, String)));
    expect(await alice.get('before')).toBe('1'); // reads still allowed, same session
    // Now remove alice's DatabaseUser: her live sessions end with the reason.
    await f.agent.writeDocs(tighter.filter((d) => !named(d, 'DatabaseUser', 'alice')));
    await rawClosed;
    expect(rawText).toMatch(
      /^\+PONG\r\n-ERR access revoked: access to cache as database user "default" denied: user "alice"/,
    );
    await f.agent.writeDocs(docs);
    await until(async () => (await f.cli('alice', ['PING'])) === 'PONG\n');
  });

  it("a session ends at its role's maxSessionTTL, with the reason", async () => {
    const { redisDocs } = await import('./fixture.js');
    const docs = redisDocs(f.redis).map((d) =>
      (d as { kind: string }).kind === 'AccessRole'
        ? { ...d, spec: { ...(d as { spec: object }).spec, options: { maxSessionTTL: '1s' } } }
        : d,
    );
    const short = await f.startAgent(docs);
    const out = await f.cliAt(short.port, 'alice', [], 'PING\n');
    expect(out).toBe('PONG\n');
    const { connect } = await import('node:tls');
    const { certPem, keyPem } = f.people.alice;
    const text = await new Promise<string>((resolve, reject) => {
      let got = '';
      const s = connect(
        { host: '127.0.0.1', port: short.port, ca: f.ca.certPem, cert: certPem, key: keyPem },
        () => s.write('PING\r\n'),
      );
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('close', () => resolve(got));
      s.on('error', reject);
    });
    expect(text).toMatch(/^\+PONG\r\n-ERR session reached the maximum session TTL of its role/);
  });

  it('a plaintext client gets a RESP error telling it to use TLS', async () => {
    const { exec } = await import('../../support/redis.js');
    const out = await exec('redis-cli', ['-h', '127.0.0.1', '-p', String(f.agent.port), 'PING']).catch(
      (e: Error) => e.message,
    );
    expect(out).toMatch(/only accepts TLS connections/);
  });
});
