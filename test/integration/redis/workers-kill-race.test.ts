// A worker killed while the primary is sending to it (a /metrics scrape asks every worker) must not
// take the primary down: an IPC write to a dead worker fails with EPIPE, reported as an 'error' event
// that, unhandled, throws in the primary and ends every other worker's sessions with it.
import { afterAll, beforeAll, expect, it } from 'vitest';
import { metricValue } from '../../support/agent-workers.js';
import { type RedisWorkersFixture, startRedisWorkers } from './fixture.js';

let f: RedisWorkersFixture;

beforeAll(async () => {
  f = await startRedisWorkers('drawbridge-redis-workers-race-');
}, 60_000);
afterAll(async () => {
  await f?.stop();
});

it('survives workers killed in the middle of scrapes', async () => {
  for (let round = 0; round < 8; round++) {
    const [victim] = await f.agent.workerPids().catch((err: unknown) => {
      throw new Error(`the primary is gone (exit ${f.agent.child.exitCode}):\n${f.agent.logs()}`, {
        cause: err,
      });
    });
    const scrapes = Array.from({ length: 40 }, () => f.agent.metricsText().catch(() => ''));
    process.kill(victim!, 'SIGKILL');
    await Promise.all(scrapes);
    expect(f.agent.child.exitCode, f.agent.logs()).toBeNull();
    // Wait for the replacement before the next round, as an operator's probe would.
    for (let i = 0; i < 100; i++) {
      const up = metricValue(await f.agent.metricsText().catch(() => ''), 'drawbridge_agent_workers');
      if (up === 2 && !(await f.agent.workerPids()).includes(victim!)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  expect(f.agent.child.exitCode, f.agent.logs()).toBeNull();
  expect(metricValue(await f.agent.metricsText(), 'drawbridge_agent_worker_restarts_total')).toBe(8);
}, 120_000);
