// A manual password rotation with spec.auth.type password against real Redis 7: the Secret holds the
// new password under the user key and the old one under `<user>.previous`; sessions keep working before
// the server changes (the agent's AUTH falls back to the old one) and after (the new one goes first).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestAgent } from '../../support/agent.js';
import { REDIS_USERS } from '../../support/redis.js';
import { type RedisFixture, redisDocs, startRedisFixture } from './fixture.js';

const NEW = 'app-rotated-pw';
const REFUSED = /^WRONGPASS the backend refused the agent's login as "app"/;
const passwords = Object.fromEntries(Object.entries(REDIS_USERS).map(([u, v]) => [u, v.password]));

let f: RedisFixture;
/** Secret: app's new password + app.previous with the old one. */
let rotating: TestAgent;
/** Secret: app's new password only. */
let newOnly: TestAgent;

/** A new session through `agent` as database user app; the replies, one per line. */
async function asApp(agent: TestAgent): Promise<string[]> {
  const out = await f.cliAt(agent.port, 'alice', [], 'AUTH app x\nACL WHOAMI\nSET rotated yes\n');
  return out.split('\n').filter(Boolean);
}

beforeAll(async () => {
  f = await startRedisFixture();
  rotating = await f.startAgent(
    redisDocs(f.redis, {
      auth: 'password',
      login: { ...passwords, app: NEW, 'app.previous': REDIS_USERS.app.password },
    }),
  );
  newOnly = await f.startAgent(redisDocs(f.redis, { auth: 'password', login: { ...passwords, app: NEW } }));
});

afterAll(async () => {
  await f?.stop();
});

describe('password rotation with <user>.previous', () => {
  it('the server still has the old password', async () => {
    expect((await asApp(newOnly))[0]).toMatch(REFUSED);
    expect(await asApp(rotating)).toEqual(['OK', 'app', 'OK']);
  });

  it('the server has the new password', async () => {
    await f.redis.cli(['ACL', 'SETUSER', 'app', 'resetpass', `>${NEW}`]);
    expect((await asApp(f.agent))[0]).toMatch(REFUSED);
    expect(await asApp(rotating)).toEqual(['OK', 'app', 'OK']);
    expect(await asApp(newOnly)).toEqual(['OK', 'app', 'OK']);
  });
});
