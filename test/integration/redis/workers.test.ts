// Redis standalone through an agent of two worker processes (`--workers 2`): sessions land on both,
// commands and their audit work from either, a denial still names its rule, one /metrics sums both.
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { metricValue } from '../../support/agent-workers.js';
import { ioredisAt } from '../../support/redis.js';
import { type RedisWorkersFixture, startRedisWorkers } from './fixture.js';

let f: RedisWorkersFixture;
const clients = new Set<Redis>();

beforeAll(async () => {
  f = await startRedisWorkers('drawbridge-redis-workers-');
}, 60_000);
afterAll(async () => {
  clients.forEach((c) => c.disconnect());
  await f?.stop();
});

describe('redis through 2 workers', () => {
  it('serves sessions on both workers, commands and denials alike', async () => {
    const byWorker = new Map<number, Redis>();
    for (let i = 0; i < 8 && byWorker.size < 2; i++) {
      const c = ioredisAt(f.agent.port, f.pki.tls('alice'), clients, { username: 'app', password: 'x' });
      await c.ping();
      const localPort = (c as unknown as { stream: { localPort: number } }).stream.localPort;
      const worker = await f.agent.ownerOf(localPort);
      if (worker !== undefined && !byWorker.has(worker)) byWorker.set(worker, c);
    }
    expect([...byWorker.keys()].sort()).toEqual((await f.agent.workerPids()).sort());
    for (const [worker, c] of byWorker) {
      await c.set(`k:${worker}`, `v:${worker}`);
      expect(await c.get(`k:${worker}`)).toBe(`v:${worker}`);
      // alice's role denies @dangerous, whichever worker holds her session.
      await expect(c.flushall()).rejects.toThrow(/role "developer" denies/);
    }
  });

  it('audits both workers in whole lines and sums them in /metrics', async () => {
    await new Promise((r) => setTimeout(r, 200));
    const text = await f.agent.auditText();
    expect(text.endsWith('\n')).toBe(true);
    const events = text
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.parse(line) as { type: string; command?: string; sessionId: string });
    const sets = events.filter((e) => e.type === 'command' && e.command?.toUpperCase() === 'SET');
    expect(new Set(sets.map((e) => e.sessionId)).size).toBe(2);
    const denied = events.filter(
      (e) => e.type === 'command.denied' && e.command?.toUpperCase() === 'FLUSHALL',
    );
    expect(new Set(denied.map((e) => e.sessionId))).toEqual(new Set(sets.map((e) => e.sessionId)));
    const metrics = await f.agent.metricsText();
    expect(metricValue(metrics, 'drawbridge_sessions_active', 'protocol="redis"')).toBe(clients.size);
    expect(metricValue(metrics, 'drawbridge_agent_workers')).toBe(2);
  });
});
