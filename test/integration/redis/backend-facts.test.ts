// The agent learns the backend's command table (COMMAND) and version (HELLO) with the first session's
// login. A database user without those rights gets an error that names the two commands to grant,
// and the next session learns them once granted: the hint is enough and asks for no more (`+@connection`
// would also grant CLIENT KILL and CLIENT PAUSE).
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type RedisFixture, startRedisFixture } from './fixture.js';

let f: RedisFixture;
/** redis-cli as rita: AUTH as database user `reader`, then `command`; the replies of both. */
const asReader = (command: string) => f.cli('rita', [], `AUTH reader ignored\n${command}\n`);
beforeAll(async () => {
  f = await startRedisFixture();
});
afterAll(async () => {
  await f?.redis.cli(['ACL', 'SETUSER', 'reader', '+@connection']);
  await f?.stop();
});

it('names the two commands a login user lacks to learn the backend, and learns it once they are granted', async () => {
  await f.redis.cli(['ACL', 'SETUSER', 'reader', '-@connection']);
  const refused = await asReader('GET facts');
  expect(refused).toMatch(/cannot learn the backend's commands as "reader".*NOPERM/);
  expect(refused).toContain('ACL SETUSER reader +command +hello');
  await f.redis.cli(['ACL', 'SETUSER', 'reader', '+command', '+hello']);
  expect((await asReader('GET facts')).split('\n')[0]).toBe('OK');
  // The role allows ECHO (@connection); the backend user, granted only the two, refuses it.
  expect(await asReader('ECHO facts')).toMatch(
    /NOPERM this user has no permissions to run the 'echo' command/,
  );
});
