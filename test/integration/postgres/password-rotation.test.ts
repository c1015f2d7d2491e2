// A manual password rotation with spec.auth.type password against real PostgreSQL 15: the Secret holds
// the new password under the user key and the old one under `<user>.previous`, and sessions keep working
// before the server changes (the agent falls back to the old one) and after (the new one is tried first).
// SCRAM (alice) and md5 (bob) roles both go through it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type TestAgent, startTestAgent } from '../../support/agent.js';
import { type Fixture, PASSWORDS, agentConninfo, baseDocs, psql, startFixture } from './fixture.js';

const NEW = { alice: 'alice-rotated-pw', bob: 'bob-rotated-pw' } as const;

let f: Fixture;
/** Secret: new passwords + `<user>.previous` with the old ones. */
let rotating: TestAgent;
/** Secret: the new passwords only. */
let newOnly: TestAgent;

/** The fixture's documents with the login Secret's data replaced. */
function docsWithPasswords(passwords: Record<string, string>): object[] {
  return baseDocs(f.pg.port, f.pg.ca.certPem).map((d) =>
    (d as { metadata: { name: string } }).metadata.name === 'pg-passwords'
      ? { ...d, stringData: passwords }
      : d,
  );
}

/** `SELECT current_user` as database user `dbUser` through `agent`. */
async function whoAmI(agent: TestAgent, dbUser: 'alice' | 'bob') {
  const r = await psql(
    agentConninfo({ ...f, agent }, f.people.alice, dbUser, 'orders'),
    'SELECT current_user',
  );
  return r.code === 0 ? r.stdout.trim() : `failed: ${r.stderr.trim()}`;
}

beforeAll(async () => {
  f = await startFixture();
  const start = (passwords: Record<string, string>) =>
    startTestAgent({ database: 'orders-pg', docs: docsWithPasswords(passwords), tls: f.agentTls });
  rotating = await start({
    ...NEW,
    'alice.previous': PASSWORDS.alice,
    'bob.previous': PASSWORDS.bob,
  });
  newOnly = await start({ ...NEW });
});

afterAll(async () => {
  await rotating?.stop();
  await newOnly?.stop();
  await f?.stop();
});

describe('password rotation with <user>.previous', () => {
  it.each(['alice', 'bob'] as const)('%s: the server still has the old password', async (dbUser) => {
    expect(await whoAmI(newOnly, dbUser)).toMatch(/failed: .*password authentication failed/);
    expect(await whoAmI(rotating, dbUser)).toBe(dbUser);
  });

  it.each(['alice', 'bob'] as const)('%s: the server has the new password', async (dbUser) => {
    const hash = dbUser === 'bob' ? 'md5' : 'scram-sha-256';
    await f.pg.admin(`SET password_encryption = '${hash}'; ALTER ROLE ${dbUser} PASSWORD '${NEW[dbUser]}'`);
    expect(await whoAmI(f.agent, dbUser)).toMatch(/failed: .*password authentication failed/);
    expect(await whoAmI(rotating, dbUser)).toBe(dbUser);
    expect(await whoAmI(newOnly, dbUser)).toBe(dbUser);
  });
});
