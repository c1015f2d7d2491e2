// spec.uri's DB number (`rediss://host:port/3`) against real Redis 7: the agent selects it right after
// logging in, RESET comes back to it, a client's own SELECT goes only there, and a DB the server does
// not have is refused with a hint.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TestAgent } from '../../support/agent.js';
import { type RedisFixture, redisDocs, startRedisFixture } from './fixture.js';

let f: RedisFixture;
let db3: TestAgent;

/** The fixture's documents with `/<db>` appended to the Database's spec.uri. */
function docsWithDatabase(db: number): object[] {
  return redisDocs(f.redis).map((d) => {
    const doc = d as { kind: string; spec: { uri: string } };
    return doc.kind === 'Database' ? { ...doc, spec: { ...doc.spec, uri: `${doc.spec.uri}/${db}` } } : d;
  });
}

/** redis-cli as alice through `agent`, commands on stdin; the replies, one per line. */
async function through(agent: TestAgent, commands: string): Promise<string[]> {
  return (await f.cliAt(agent.port, 'alice', [], commands)).split('\n').filter(Boolean);
}

/** The value of `key` in DB `db`, read straight from the server. */
async function direct(db: number, key: string): Promise<string> {
  return (await f.redis.cli(['-n', String(db), 'GET', key])).trim();
}

beforeAll(async () => {
  f = await startRedisFixture();
  db3 = await f.startAgent(docsWithDatabase(3));
});

afterAll(async () => {
  await f?.stop();
});

describe('spec.uri DB number', () => {
  it('a key written through the agent lands in that DB', async () => {
    expect(await through(db3, 'SET uri-db written\nGET uri-db\n')).toEqual(['OK', 'written']);
    expect(await direct(3, 'uri-db')).toBe('written');
    expect(await direct(0, 'uri-db')).toBe('');
  });

  it('RESET returns to that DB, as the same database user', async () => {
    const out = await through(db3, 'AUTH app x\nRESET\nACL WHOAMI\nSET after-reset yes\n');
    expect(out).toEqual(['OK', 'RESET', 'app', 'OK']);
    expect(await direct(3, 'after-reset')).toBe('yes');
  });

  it("the client's own SELECT goes only to that DB", async () => {
    const out = await through(db3, 'SELECT 3\nSELECT 5\nSET selected three\n');
    expect(out).toEqual(['OK', expect.stringMatching(/^NOPERM .*\(DB 3 in spec\.uri\): SELECT 5/), 'OK']);
    expect(await direct(3, 'selected')).toBe('three');
    expect(await direct(5, 'selected')).toBe('');
  });

  it('a DB the server does not have is refused with a hint', async () => {
    const agent = await f.startAgent(docsWithDatabase(99));
    const [reply] = await through(agent, 'PING\n');
    expect(reply).toMatch(
      /^ERR the backend refused SELECT 99 \(the DB in spec.uri\): ERR DB index is out of range.*hint: use a DB number below/,
    );
  });
});
