// limits.maxConnectionsPerIdentity over an agent of two worker processes in front of the real Redis:
// alice's two certificate sessions sit on both workers, and her third is refused wherever it lands
// (counted per worker, each worker would have had room); a slot comes back when a session ends.
import { rm } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type WorkersAgent, metricValue, startWorkersAgent } from '../../support/agent-workers.js';
import { type RedisServer, issuePeopleTls, startRedis } from '../../support/redis.js';
import { command, received, tlsClient } from '../hostile/limits-support.js';
import { PEOPLE, redisDocs } from './fixture.js';

let redis: RedisServer;
let agent: WorkersAgent;
let pki: Awaited<ReturnType<typeof issuePeopleTls<(typeof PEOPLE)[number]>>>;
const sockets = new Set<TLSSocket>();

beforeAll(async () => {
  pki = await issuePeopleTls(PEOPLE, 'cache agent', 'drawbridge-redis-workers-limits-');
  redis = await startRedis();
  agent = await startWorkersAgent({
    database: 'cache',
    docs: redisDocs(redis),
    tls: pki.agentTls,
    workers: 2,
    limits: { maxConnectionsPerIdentity: 2 },
  });
}, 60_000);
afterAll(async () => {
  sockets.forEach((s) => s.destroy());
  await agent?.stop();
  await redis?.stop();
  if (pki) await rm(pki.dir, { recursive: true, force: true });
});

async function person(who: (typeof PEOPLE)[number]): Promise<TLSSocket> {
  const s = await tlsClient(agent.port, pki.tls(who));
  sockets.add(s);
  return s;
}

it('refuses alice’s third connection on either worker, naming the limit; an ended one frees a slot', async () => {
  const [a1, a2] = [await person('alice'), await person('alice')];
  await command(a1, '+PONG', 'PING');
  await command(a2, '+PONG', 'PING');
  const workers = await Promise.all([a1, a2].map((s) => agent.ownerOf(s.localPort!)));
  expect(new Set(workers).size).toBe(2);
  // Round-robin hands consecutive connections to each worker in turn: both refuse.
  for (let i = 0; i < 2; i++) {
    const r = await received(await person('alice'));
    expect(r.text).toContain(
      '"alice" already has 2 connections to this agent (limits.maxConnectionsPerIdentity)',
    );
    expect(r.closed).toBe(true);
  }
  await command(await person('ops'), '+PONG', 'PING');
  a1.destroy();
  await sleep(200);
  await command(await person('alice'), '+PONG', 'PING');
  const text = await agent.metricsText();
  expect(metricValue(text, 'drawbridge_limit_exceeded_total', 'limit="maxConnectionsPerIdentity"')).toBe(2);
}, 30_000);
