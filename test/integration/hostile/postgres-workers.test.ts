// The attacker who floods an agent of two worker processes with CancelRequests for keys that do not
// exist, each of which a worker offers to its sibling: no worker falls over or runs out of room, the
// guesses cancel nothing, and a real cancel still gets through. Real PostgreSQL 15, the real CLI.
import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type WorkersAgent, metricValue } from '../../support/agent-workers.js';
import { type Fixture, pgClient, startFixture, startWorkersAgentFor } from '../postgres/fixture.js';
import { cancelPlain } from '../postgres/raw-client.js';

let f: Fixture;
let agent: WorkersAgent;
beforeAll(async () => {
  f = await startFixture();
  agent = await startWorkersAgentFor(f);
}, 60_000);
afterAll(async () => {
  await agent?.stop();
  await f?.stop();
});

it('survives 3,000 bogus cancels across workers; the real one still cancels', async () => {
  const c = pgClient({ ...f, agent: { ...f.agent, port: agent.port } }, f.people.alice, 'alice', 'orders');
  c.on('error', () => undefined);
  await c.connect();
  const { processID, secretKey } = c as unknown as { processID: number; secretKey: number };
  const pids = await agent.workerPids();
  const result = c.query('select pg_sleep(30)').then(
    () => 'finished',
    (err: { code?: string }) => err.code,
  );
  // Guesses at the session's own process id too: a wrong secret must cancel nothing.
  for (let batch = 0; batch < 30; batch++) {
    await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        cancelPlain(agent.port, i % 2 ? processID : randomInt(1, 2 ** 31), randomInt(-(2 ** 31), 2 ** 31)),
      ),
    );
  }
  await sleep(500);
  expect(await f.pg.admin(`select state from pg_stat_activity where pid = ${processID}`)).toContain('active');
  expect((await agent.workerPids()).sort()).toEqual(pids.sort());
  // Whichever worker accepts it, the real key reaches the one holding the session.
  await cancelPlain(agent.port, processID, secretKey);
  expect(await Promise.race([result, sleep(5_000).then(() => 'still running')])).toBe('57014');
  expect(metricValue(await agent.metricsText(), 'drawbridge_agent_worker_restarts_total')).toBe(0);
  await c.end();
}, 60_000);
