// limits.maxConnectionsPerIdentity over an agent of two worker processes in front of the real Redis:
// alice's two certificate sessions sit on both workers, and her third is refused wherever it lands
// (counted per worker, each worker would have had room); a slot comes back when a session ends.
import { setTimeout as sleep } from 'node:timers/promises';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { metricValue } from '../../support/agent-workers.js';
import { command, received, tlsClient } from '../hostile/limits-support.js';
import { type PersonName, type RedisWorkersFixture, startRedisWorkers } from './fixture.js';

let f: RedisWorkersFixture;
const sockets = new Set<TLSSocket>();

beforeAll(async () => {
  f = await startRedisWorkers('drawbridge-redis-workers-limits-', {
    limits: { maxConnectionsPerIdentity: 2 },
  });
}, 60_000);
afterAll(async () => {
  sockets.forEach((s) => s.destroy());
  await f?.stop();
});

async function person(who: PersonName): Promise<TLSSocket> {
  const s = await tlsClient(f.agent.port, f.pki.tls(who));
  sockets.add(s);
  return s;
}

it('refuses alice’s third connection on either worker, naming the limit; an ended one frees a slot', async () => {
  const [a1, a2] = [await person('alice'), await person('alice')];
  await command(a1, '+PONG', 'PING');
  await command(a2, '+PONG', 'PING');
  const workers = await Promise.all([a1, a2].map((s) => f.agent.ownerOf(s.localPort!)));
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
  const text = await f.agent.metricsText();
  expect(metricValue(text, 'drawbridge_limit_exceeded_total', 'limit="maxConnectionsPerIdentity"')).toBe(2);
}, 30_000);
