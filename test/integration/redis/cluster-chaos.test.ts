// The cluster changing under load, seen through the agent by plain (non-cluster) clients:
// - resharding with `redis-cli --cluster reshard` (real MIGRATING/IMPORTING, ASK, TRYAGAIN, MOVED):
//   not one error may reach a client, and every acknowledged write must read back;
// - a master SIGKILLed: the agent follows the promoted replica; errors only for commands in flight at
//   the kill; a ledger of every acknowledged write is checked against the cluster afterwards.
// One cluster for both (resharding first, while all six nodes are up).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClusterFixture, startClusterFixture } from './cluster-fixture.js';
import { keysInSlots, runLoad } from './cluster-load.js';

let f: ClusterFixture;

beforeAll(async () => {
  f = await startClusterFixture();
});

afterAll(async () => {
  await f?.stop();
});

/** Sum of `INFO section` counters matching `pattern` (global, one capture) over every running node. */
async function statOverNodes(section: string, pattern: RegExp): Promise<number> {
  let total = 0;
  for (const port of f.cluster.nodes.filter((n) => !n.exited).map((n) => n.port)) {
    for (const m of (await f.cluster.cli(port, ['INFO', section])).matchAll(pattern)) total += Number(m[1]);
  }
  return total;
}

describe('Redis Cluster changing under load', () => {
  it('resharding: no error reaches any client, redirects happen behind the agent', async () => {
    const [from, to] = await f.cluster.masters();
    const moving = from!.slots[0]![0];
    const slots = Array.from({ length: 100 }, (_, i) => moving + i);
    const keys = keysInSlots(slots, 20); // 2,000 keys in the slots that move
    const clients = Array.from({ length: 8 }, () => f.ioredis('alice'));
    const seed = f.ioredis('alice');
    await seed.mset(Object.fromEntries(keys.map((k) => [k, 'seed'])));
    const redirects = () => statOverNodes('errorstats', /errorstat_(?:MOVED|ASK):count=(\d+)/g);
    const redirectsBefore = await redirects();
    // Client w owns the keys ≡ w (mod 8) and cycles over them.
    const load = runLoad(
      clients,
      (w, n) => keys[(n * 8 + w) % keys.length]!,
      async (c, key, value) => {
        // Single-key writes and reads, and a same-slot multi-key command (TRYAGAIN while split).
        const tagged = key.replace(/:\d+$/, ':0');
        const [set, get, mget] = (await c.pipeline().set(key, value).get(key).mget(key, tagged).exec())!;
        for (const [err] of [set!, get!, mget!]) if (err) throw err;
        if (get![1] !== value) throw new Error(`read ${String(get![1])} after writing ${value}`);
      },
    );
    await f.cluster.reshard(from!.port, to!.port, 100, 5);
    await load.stop();
    expect(load.errors).toEqual([]);
    expect(load.ops).toBeGreaterThan(100);
    // The slots really moved, and the cluster really answered the agent with MOVED/ASK.
    const moved = (await f.cluster.view()).find((n) => n.port === to!.port)!;
    expect(moved.slots.some(([a, b]) => a <= moving && moving <= b)).toBe(true);
    expect(await redirects()).toBeGreaterThan(redirectsBefore);
    // Every acknowledged write reads back.
    const check = f.ioredis('alice');
    const acked = [...load.acked.entries()];
    const values = await check.mget(...acked.map(([k]) => k));
    expect(values).toEqual(acked.map(([, v]) => v));
  });

  it('failover: the agent follows the promoted replica; acknowledged writes are never lost', async () => {
    const victim = (await f.cluster.masters())[0]!;
    // Every write gets a fresh key; half of them hash (by tag) into the victim's slots, so writes keep
    // hitting the failing shard, and "may or may not have been applied" never muddies another key.
    const tags = keysInSlots(
      Array.from({ length: 50 }, (_, i) => victim.slots[0]![0] + i),
      1,
    );
    const inVictim = (key: string) => key.startsWith('{');
    const clients = Array.from({ length: 8 }, () => f.ioredis('alice'));
    const load = runLoad(
      clients,
      (w, n) => (n % 2 ? `ledger:${w}:${n}` : `${tags[n % tags.length]}:${w}:${n}`),
      async (c, key, value) => {
        if ((await c.set(key, value)) !== 'OK') throw new Error('SET not acknowledged');
      },
    );
    await new Promise((r) => setTimeout(r, 500));
    const opsAtKill = load.ops;
    const { killed, promoted } = await f.cluster.killMaster(victim.port);
    const opsAtPromotion = load.ops;
    await new Promise((r) => setTimeout(r, 1500));
    await load.stop();
    expect(promoted).not.toBe(killed);
    // Writes to the failed shard resumed on the promoted replica.
    const resumed = [...load.acked.keys()].filter(inVictim);
    expect(resumed.length).toBeGreaterThan(0);
    expect(load.ops).toBeGreaterThan(opsAtPromotion);
    expect(opsAtPromotion).toBeGreaterThanOrEqual(opsAtKill);
    // Errors only for what was in flight at the kill: at most one command per client.
    expect(load.errors.length).toBeLessThanOrEqual(clients.length);
    for (const e of load.errors) expect(e).toMatch(/may or may not have been applied/);
    // The ledger: every write a client saw acknowledged is in the cluster now.
    const check = f.ioredis('alice');
    const acked = [...load.acked.entries()];
    const values = await check.mget(...acked.map(([k]) => k));
    const lost = acked.filter(([, v], i) => values[i] !== v).map(([k, v]) => `${k}=${v}`);
    expect(lost).toEqual([]);
  });
});
