// The Redis agent's own log lines under attack (the audit log has its own suites): a real Redis 7
// behind an agent whose log is captured at debug. A stranger's malformed bytes reach a line escaped,
// and a stranger looping on them does not write a line each; no password, from the agent's Secret or
// in a client's AUTH, HELLO, ACL SETUSER, MIGRATE or CONFIG SET, reaches a line.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOG_BURST } from '../../../src/agent/log-budget.js';
import type { TestAgent } from '../../support/agent.js';
import { REDIS_USERS } from '../../support/redis.js';
import { type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { type CapturedLog, capturedLog } from './log-capture.js';
import { command, received, resp, tlsClient } from './limits-support.js';

const WRONG_PASSWORD = 'wrong-pw-LOGTEST-9d2e';
/** What clients send as passwords, each its own string so a leak names its path. */
const SENT = ['auth-LOGTEST-1', 'hello-LOGTEST-2', 'acl-LOGTEST-3', 'migrate-LOGTEST-4', 'migrate-LOGTEST-5'];
const TOKEN = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.token-LOGTEST-6';

let f: RedisFixture;
let agent: TestAgent;
let logged: CapturedLog;

beforeAll(async () => {
  f = await startRedisFixture();
  logged = capturedLog();
  // `default`'s password in the agent's Secret is wrong: sessions as default fail at the server.
  const login: Record<string, string> = Object.fromEntries(
    Object.entries(REDIS_USERS).map(([u, v]) => [u, v.password]),
  );
  login.default = WRONG_PASSWORD;
  agent = await f.startAgent(redisDocs(f.redis, { auth: 'password', login }), { log: logged.log });
});

afterAll(async () => {
  await f?.stop();
});

const stranger = () => tlsClient(agent.port, { ca: f.ca.certPem });

describe('the Redis agent’s log lines', () => {
  it('a stranger’s malformed byte (a C1 CSI) reaches the line escaped', async () => {
    const s = await stranger();
    const reply = received(s);
    s.write(Buffer.from('*1\r\n\x9b2J\r\n', 'latin1'));
    expect((await reply).text).toMatch(/^-ERR Protocol error: expected '\$'/);
    const line = logged.lines.find((l) => l.includes('malformed client input'));
    expect(line).toContain("got '\\u009b'");
    expect(JSON.parse(line!).reason).toContain("got '\u009b'");
  });

  it('a stranger looping on malformed input writes a few lines, not one a connection', async () => {
    for (let i = 0; i < 3; i++) {
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          const s = await stranger();
          const reply = received(s);
          s.write('*1\r\nx\r\n');
          await reply;
        }),
      );
    }
    expect(logged.withMsg('malformed client input; closing session')).toHaveLength(LOG_BURST);
  });

  it('no password reaches a line: the Secret’s the server refuses, nor any a client sends', async () => {
    // alice's sessions are `default`'s: its login with the Secret's wrong password fails.
    const alice = await f.rawAt(agent.port, 'alice');
    const told = new Promise<string>((resolve) => alice.once('data', (d: Buffer) => resolve(d.toString())));
    alice.write(resp('PING'));
    expect(await told).toMatch(/^-WRONGPASS the backend refused the agent's login as "default"/);
    expect(await told).not.toContain(WRONG_PASSWORD);
    alice.destroy();
    // A stranger's made-up token, as AUTH and as HELLO AUTH (a standalone agent checks no token).
    const s = await stranger();
    await command(s, '-', 'AUTH', 'alice', TOKEN);
    await command(s, '-', 'HELLO', '3', 'AUTH', 'alice', SENT[1]!);
    s.destroy();
    // ops may be anyone: AUTH (its password is not the login's), then commands carrying passwords.
    const ops = await f.rawAt(agent.port, 'ops');
    await command(ops, '+OK', 'AUTH', 'admin', SENT[0]!);
    await command(ops, '\r\n', 'ACL', 'SETUSER', 'logtest', 'on', `>${SENT[2]}`, '~*', '+get');
    await command(ops, '\r\n', 'MIGRATE', '127.0.0.1', '1', 'k', '0', '100', 'AUTH', SENT[3]!);
    await command(ops, '\r\n', 'MIGRATE', '127.0.0.1', '1', 'k', '0', '100', 'AUTH2', 'u', SENT[4]!);
    ops.write(resp('QUIT'));
    await received(ops);
    logged.expectClean([WRONG_PASSWORD, TOKEN, 'token-LOGTEST', ...SENT]);
  });
});
