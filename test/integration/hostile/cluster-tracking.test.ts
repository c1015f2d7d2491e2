// Hostile: client-side caching (CLIENT TRACKING, RESP3) through the agent in front of the real 6-node
// TLS+ACL Redis Cluster. Node connections are shared by the sessions of a database user, so tracking
// must never be switched on where another session's reads run, nor send one session's invalidations
// to another; REDIRECT (a backend connection id) and RESP2 tracking are refused as on one server; and
// BCAST, which Redis does not check against key permissions, must not push the names of keys the
// database user's ACL hides, written on any master.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisCluster, clusterDatabaseDocs } from '../../support/redis-cluster.js';
import { peoplePolicy } from '../../support/redis.js';
import type { NodeView } from '../../support/redis-cluster.js';
import { type ClusterFixture, keyOn, startClusterFixture } from '../redis/cluster-fixture.js';
import { Wire } from '../redis/cluster-wire.js';

let cluster: RedisCluster;
let f: ClusterFixture;
let masters: NodeView[];

beforeAll(async () => {
  cluster = await RedisCluster.start();
  // `keyed` may read app:* only, on every node (replicas too: a failover must not widen it).
  for (const port of cluster.ports) {
    await cluster.cli(port, ['ACL', 'SETUSER', 'keyed', 'on', '>keyed-pw', '~app:*', '&*', '+@all']);
  }
  f = await startClusterFixture(cluster, (c) => [
    ...clusterDatabaseDocs(c, 'sessions', { env: 'prod' }, { keyed: 'keyed-pw' }),
    ...peoplePolicy(),
  ]);
  masters = await cluster.masters();
});

afterAll(async () => {
  await f?.stop();
  await cluster?.stop();
});

const perMaster = (prefix: string) => masters.map((m) => keyOn(m, prefix));

/** Writes each key as admin straight on the master owning it. */
async function writeOnOwners(keys: string[], value: string): Promise<void> {
  for (const [i, m] of masters.entries()) await cluster.cli(m.port, ['SET', keys[i]!, value]);
}

describe('hostile: CLIENT TRACKING on a cluster', () => {
  it('RESP2 tracking and REDIRECT are refused, naming the rule; nothing is tracked', async () => {
    const w = await Wire.open(f, 'alice');
    const [resp2] = await w.call(['CLIENT', 'TRACKING', 'ON']);
    expect(String(resp2)).toMatch(
      /^-NOPERM drawbridge: CLIENT TRACKING in RESP2 needs REDIRECT.*send HELLO 3 first/,
    );
    const [, redirect] = await w.call(['HELLO', '3'], ['CLIENT', 'TRACKING', 'ON', 'REDIRECT', '7']);
    expect(String(redirect)).toMatch(/^-NOPERM drawbridge: CLIENT TRACKING \.\.\. REDIRECT is not available/);
    const keys = perMaster('t-refused:');
    await w.call(...keys.map((k) => ['GET', k]));
    await writeOnOwners(keys, 'x');
    expect(await w.drain()).toEqual([]);
    w.close();
  });

  it("one session's tracking reaches neither the shared connections nor another session of the same user", async () => {
    const tracker = await Wire.open(f, 'alice', 3);
    const other = await Wire.open(f, 'alice', 3);
    const keys = perMaster('t-iso:');
    expect(String((await tracker.call(['CLIENT', 'TRACKING', 'ON']))[0])).toBe('+OK\r\n');
    await tracker.call(...keys.map((k) => ['GET', k]));
    await other.call(...keys.map((k) => ['GET', k]));
    // The other session's commands still run on the shared connections, where tracking is off.
    const [info] = await other.call(['CLIENT', 'TRACKINGINFO']);
    expect(String(info)).toContain('off');
    expect(String((await tracker.call(['CLIENT', 'TRACKINGINFO']))[0])).toContain('on');
    await writeOnOwners(keys, 'y');
    const pushes = await tracker.take(keys.length);
    expect(pushes.map((p) => String(p).split('\r\n')[5]).sort()).toEqual([...keys].sort());
    expect(await other.drain()).toEqual([]);
    tracker.close();
    other.close();
  });

  it('tracking never rides a borrowed connection to another session: refused inside MULTI, not pooled after use', async () => {
    const a = await Wire.open(f, 'alice', 3);
    const b = await Wire.open(f, 'alice', 3);
    const [k1, k2, k3] = masters.map((m) => keyOn(m, 't-lent:'));
    // Queued inside a transaction it would turn tracking on for a pooled connection, which the next
    // session to track (b, on any node) could take, along with what was read on it.
    const [, , inTx, , exec] = (
      await a.call(['MULTI'], ['GET', k1!], ['CLIENT', 'TRACKING', 'ON'], ['GET', k1!], ['EXEC'])
    ).map(String);
    expect(inTx).toMatch(/^-ERR client\|tracking inside MULTI is not supported on a cluster/);
    expect(exec).toMatch(/^-EXECABORT/);
    expect(String((await b.call(['CLIENT', 'TRACKING', 'ON']))[0])).toBe('+OK\r\n');
    // Tracked reads on connections lent to a transaction and a blocking read, then tracking off:
    // those connections close instead of going back to the pool, where b's transactions borrow.
    expect(String((await a.call(['CLIENT', 'TRACKING', 'ON']))[0])).toBe('+OK\r\n');
    await a.call(['MULTI'], ['GET', k2!], ['EXEC'], ['XREAD', 'BLOCK', '100', 'STREAMS', k3!, '0']);
    expect(String((await a.call(['CLIENT', 'TRACKING', 'OFF']))[0])).toBe('+OK\r\n');
    for (const m of masters) await b.call(['MULTI'], ['GET', keyOn(m, 't-mine:')], ['EXEC']);
    await cluster.cli(masters[0]!.port, ['SET', k1!, 'x']);
    await cluster.cli(masters[1]!.port, ['SET', k2!, 'x']);
    await cluster.cli(masters[2]!.port, ['XADD', k3!, '*', 'f', 'v']);
    expect(await b.drain()).toEqual([]);
    expect(await a.drain()).toEqual([]);
    a.close();
    b.close();
  });

  it("BCAST outside the database user's readable keys is refused and pushes nothing; inside, only those keys", async () => {
    const w = await Wire.open(f, 'ops');
    const [auth, hello] = await w.call(['AUTH', 'keyed', 'x'], ['HELLO', '3']);
    expect([String(auth), String(hello)[0]]).toEqual(['+OK\r\n', '%']);
    const [secret, all] = await w.call(
      ['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'secret:'],
      ['CLIENT', 'TRACKING', 'ON', 'BCAST'],
    );
    expect(String(secret)).toMatch(
      /^-NOPERM drawbridge: CLIENT TRACKING BCAST PREFIX "secret:" is outside the keys database user "keyed" may read/,
    );
    expect(String(all)).toMatch(/BCAST without PREFIX \(every key\) is outside/);
    await writeOnOwners(perMaster('secret:'), 'pw');
    expect(await w.drain()).toEqual([]);
    expect(String((await w.call(['CLIENT', 'TRACKING', 'ON', 'BCAST', 'PREFIX', 'app:']))[0])).toBe(
      '+OK\r\n',
    );
    await writeOnOwners(perMaster('secret:b'), 'pw');
    const apps = perMaster('app:');
    await writeOnOwners(apps, 'v');
    const pushes = (await w.take(apps.length)).map(String);
    expect(pushes.map((p) => p.split('\r\n')[5]).sort()).toEqual([...apps].sort());
    expect((await w.drain()).join('')).not.toContain('secret:');
    w.close();
  });
});
