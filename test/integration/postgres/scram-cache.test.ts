// The agent keeps SCRAM-SHA-256 keys derived from the Secret's password (scram.ts), so repeated logins
// skip PBKDF2. Against real PostgreSQL 15, through one running agent whose Secret changes: a wrong
// password in the Secret fails although keys for the right one (same server salt) are cached; a password
// changed on the server (ALTER ROLE) and in the Secret works on the next session; the old password then
// fails although its keys are still cached.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, PASSWORDS, agentConninfo, baseDocs, psql, startFixture } from './fixture.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

/** Rewrites the login Secret's alice password and waits until the agent has loaded it. */
async function secretPassword(password: string): Promise<void> {
  const docs = baseDocs(f.pg.port, f.pg.ca.certPem).map((d) =>
    (d as { metadata: { name: string } }).metadata.name === 'pg-passwords'
      ? { ...d, stringData: { ...PASSWORDS, alice: password } }
      : d,
  );
  await f.agent.writeDocs(docs);
  const loaded = () => f.agent.running.agent.state.secret('pg-passwords')?.alice === password;
  for (let i = 0; i < 200 && !loaded(); i++) await sleep(50);
  expect(loaded()).toBe(true);
}

async function aliceLogin(): Promise<string> {
  const r = await psql(agentConninfo(f, f.people.alice, 'alice', 'orders'), 'SELECT current_user');
  return r.code === 0 ? r.stdout.trim() : `failed: ${r.stderr.trim()}`;
}

describe('SCRAM keys cached by the agent', () => {
  it('never let another password log in, and follow a password change', async () => {
    expect(await aliceLogin()).toBe('alice'); // keys for the right password and the server's salt cached
    expect(await aliceLogin()).toBe('alice');

    await secretPassword('not-alice-pw');
    expect(await aliceLogin()).toMatch(/failed: .*password authentication failed for user "alice"/);

    await f.pg.admin(`SET password_encryption = 'scram-sha-256'; ALTER ROLE alice PASSWORD 'alice-new-pw'`);
    await secretPassword('alice-new-pw');
    expect(await aliceLogin()).toBe('alice');
    expect(await aliceLogin()).toBe('alice');

    // The old password's keys are still in the cache, for the old salt: the server's new salt misses them.
    await secretPassword(PASSWORDS.alice);
    expect(await aliceLogin()).toMatch(/failed: .*password authentication failed for user "alice"/);
  });
});
