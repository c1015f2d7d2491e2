// The PostgreSQL agent's own log lines under attack (the audit log has its own suites): a real
// PostgreSQL 15 behind an agent whose log is captured at debug. A stranger looping on connect must not
// write a line per connection; what a logged-in client names (its database user) reaches the line
// escaped; a password from the agent's Secret never reaches a line, not even when the server refuses it.
import { readFile, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOG_BURST } from '../../../src/agent/log-budget.js';
import { startupMessage } from '../../../src/engines/postgres/serializer.js';
import { type TestAgent, startTestAgent } from '../../support/agent.js';
import { type Fixture, baseDocs, startFixture } from '../postgres/fixture.js';
import { rawSession } from '../postgres/raw-client.js';
import { type CapturedLog, capturedLog } from './log-capture.js';
import { eventually } from './limits-support.js';

const WRONG_PASSWORD = 'wrong-pw-LOGTEST-5c1f';

let f: Fixture;
let agent: TestAgent;
let logged: CapturedLog;

beforeAll(async () => {
  f = await startFixture();
  logged = capturedLog();
  // alice's password in the agent's Secret is wrong: her logins fail at the server.
  const docs = baseDocs(f.pg.port, f.pg.ca.certPem).map((d) =>
    (d as { metadata: { name: string } }).metadata.name === 'pg-passwords'
      ? { ...d, stringData: { alice: WRONG_PASSWORD, bob: 'bob-md5-pw' } }
      : d,
  );
  agent = await startTestAgent({ database: 'orders-pg', docs, tls: f.agentTls, log: logged.log });
});

afterAll(async () => {
  await agent?.stop();
  await f?.stop();
});

/** One plaintext startup from a stranger (no TLS), to its close. */
function plaintextStartup(port: number): Promise<void> {
  return new Promise((resolve) => {
    const s = tcpConnect({ host: '127.0.0.1', port });
    s.on('error', () => undefined);
    s.once('close', () => resolve());
    s.end(startupMessage([['user', 'postgres']]));
    s.resume();
  });
}

async function failedSessions(): Promise<number> {
  const m = await agent.running.agent.metrics.sessionsTotal.get();
  return m.values.find((v) => v.labels.outcome === 'failed')?.value ?? 0;
}

describe('the PostgreSQL agent’s log lines', () => {
  it('a stranger’s 300 refused connections write a few lines, not one each; the metric counts all', async () => {
    const before = await failedSessions();
    for (let i = 0; i < 300; i += 30) {
      await Promise.all(Array.from({ length: 30 }, () => plaintextStartup(agent.port)));
    }
    expect((await failedSessions()) - before).toBe(300);
    const refused = logged.withMsg('postgres connection refused');
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.length).toBeLessThanOrEqual(LOG_BURST);
    expect(refused[0]!.err).toMatch(/accepts TLS connections only/);
  });

  it('a database user a person chose reaches the access-denied line escaped: no C1 CSI, no bidi override', async () => {
    const hostile = 'x\u009b2J\u009b1;1H\u202eFATAL\u2028{"level":60}';
    const err = await rawSession({ ...f, agent }, f.people.alice, hostile, 'orders').catch((e: Error) => e);
    expect(String(err)).toMatch(/startup failed: .*denied/s);
    const denied = logged.withMsg('access denied').find((l) => l.user === 'alice');
    // The same value, once parsed: the person can still be told what they asked for.
    expect(denied?.dbUser).toBe(hostile);
    expect(logged.lines.find((l) => l.includes('"access denied"'))).toContain(
      'x\\u009b2J\\u009b1;1H\\u202eFATAL',
    );
  });

  it('a password from the Secret the server refuses is in no log line, nor in what the client is told', async () => {
    const err = await rawSession({ ...f, agent }, f.people.alice, 'alice', 'orders').catch((e: Error) => e);
    expect(String(err)).toMatch(/password authentication failed|backend/i);
    expect(String(err)).not.toContain(WRONG_PASSWORD);
    // Logged: the stranger's flood above spent the budget of its own code, not this one's.
    const failed = logged.withMsg('postgres connection refused').filter((l) => l.code !== 'AUTHN_FAILED');
    expect(failed).toEqual([expect.objectContaining({ code: 'BACKEND_AUTH_FAILED' })]);
    logged.expectClean([WRONG_PASSWORD]);
    for (const event of await agent.auditEvents())
      expect(JSON.stringify(event)).not.toContain(WRONG_PASSWORD);
  });

  it('a config reload that fails on a password line logs where, never the line', async () => {
    const good = await readFile(agent.configPath, 'utf8');
    const broken = good.replace(`alice: ${WRONG_PASSWORD}`, `alice: "${WRONG_PASSWORD}" x`);
    expect(broken).not.toBe(good);
    await writeFile(agent.configPath, broken);
    const failed = () => logged.withMsg('config reload failed; keeping the previous config');
    await eventually(() => failed().length > 0, 'the reload to fail');
    expect(failed()[0]!.error).toMatch(/YAML syntax error at line \d+, column \d+: /);
    logged.expectClean([WRONG_PASSWORD]);
    await writeFile(agent.configPath, good);
  });
});
