// limits.maxConnectionsPerIdentity and maxConnections hold for the whole agent replica, not per worker
// process: an agent of two workers (`--workers 2`) in front of the real PostgreSQL, with 3 connections
// per identity and 5 in all. Counted per worker, 2×3 of one identity would get in; here the 4th is
// refused wherever it lands, a slot frees when a session ends, and a SIGKILLed worker's slots free.
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type WorkersAgent, metricValue, startWorkersAgent } from '../../support/agent-workers.js';
import { type Fixture, baseDocs, pgClient, startFixture } from './fixture.js';

let f: Fixture;
let agent: WorkersAgent;
/** Open sessions, by the worker process holding each. */
const live = new Map<pg.Client, number>();

beforeAll(async () => {
  f = await startFixture();
  agent = await startWorkersAgent({
    database: 'orders-pg',
    docs: baseDocs(f.pg.port, f.pg.ca.certPem),
    tls: f.agentTls,
    workers: 2,
    limits: { maxConnectionsPerIdentity: 3, maxConnections: 5 },
  });
}, 60_000);
afterAll(async () => {
  await Promise.all([...live.keys()].map((c) => c.end().catch(() => undefined)));
  await agent?.stop();
  await f?.stop();
});

/** A session as `who` (database user alice), and the worker holding it; or the error it was refused with. */
async function connect(who: 'alice' | 'dave'): Promise<pg.Client | { code?: string; message: string }> {
  const c = pgClient({ ...f, agent: { ...f.agent, port: agent.port } }, f.people[who], 'alice', 'orders');
  c.on('error', () => undefined);
  try {
    await c.connect();
  } catch (err) {
    return err as { code?: string; message: string };
  }
  const port = (c as unknown as { connection: { stream: { localPort: number } } }).connection.stream
    .localPort;
  for (let i = 0; i < 50; i++) {
    const worker = await agent.ownerOf(port);
    if (worker !== undefined) {
      live.set(c, worker);
      return c;
    }
    await sleep(20);
  }
  throw new Error('no worker holds the session');
}

async function session(who: 'alice' | 'dave'): Promise<pg.Client> {
  const c = await connect(who);
  if ('message' in c) throw new Error(`${who} was refused: ${c.message}`);
  return c;
}

/** Tries `n` more connections as `who` (round-robin hands them to both workers): each is refused. */
async function expectRefused(who: 'alice' | 'dave', n: number, limit: string) {
  for (let i = 0; i < n; i++) {
    const refused = await connect(who);
    expect('message' in refused ? refused : 'admitted').toMatchObject({ code: '53300' });
    expect((refused as Error).message).toContain(`limits.${limit}`);
  }
}

async function end(c: pg.Client) {
  live.delete(c);
  await c.end();
  await sleep(200); // the slot comes back as the agent sees the close
}

it('refuses the 4th connection of one identity on either worker; an ended session frees a slot', async () => {
  const held = [await session('alice'), await session('alice'), await session('alice')];
  // Spread over both workers: counted per worker, either would have room for more.
  expect(new Set(held.map((c) => live.get(c))).size).toBe(2);
  await expectRefused('alice', 4, 'maxConnectionsPerIdentity');
  const text = await agent.metricsText();
  expect(
    metricValue(text, 'drawbridge_limit_exceeded_total', 'limit="maxConnectionsPerIdentity"'),
  ).toBeGreaterThanOrEqual(4);

  await end(held[0]!);
  await session('alice');
  await expectRefused('alice', 2, 'maxConnectionsPerIdentity');
}, 60_000);

it("gives back a SIGKILLed worker's slots", async () => {
  const [victim, survivor] = await agent.workerPids();
  const onVictim = [...live.values()].filter((w) => w === victim).length;
  expect(onVictim).toBeGreaterThan(0);
  process.kill(victim!, 'SIGKILL');
  for (const [c, w] of live) if (w === victim) live.delete(c);
  for (let i = 0; i < 100 && (await agent.workerPids()).includes(victim!); i++) await sleep(100);
  // Its sessions' slots are free at once (the surviving worker takes the new ones meanwhile).
  for (let i = 0; i < onVictim; i++) await session('alice');
  expect([...live.values()].filter((w) => w === survivor).length).toBeGreaterThan(0);
  await expectRefused('alice', 2, 'maxConnectionsPerIdentity');
}, 60_000);

it('holds maxConnections for the replica, then admits again once one closes', async () => {
  // alice holds 3; dave 2 more makes the replica's 5, wherever they landed.
  for (let i = 0; i < 100 && metricValue(await agent.metricsText(), 'drawbridge_agent_workers') !== 2; i++) {
    await sleep(100);
  }
  const dave = [await session('dave'), await session('dave')];
  await expectRefused('dave', 3, 'maxConnections');
  await end(dave[0]!);
  await session('dave');
}, 60_000);
