// A worker of a two-worker agent in front of the real Redis is killed (SIGKILL) with sessions open:
// the primary writes a session.end for each of them, naming the crash, after the session's own lines;
// their connection slots come back (alice may open as many again), the sessions-active gauge drops to
// the survivors', and the agent serves new sessions. The audit log is a FIFO here: the primary relays
// the workers' lines to it, as it does to stdout, and at shutdown drains every worker's last lines.
import type { Redis } from 'ioredis';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { metricValue } from '../../support/agent-workers.js';
import { ioredisAt } from '../../support/redis.js';
import { type RedisWorkersFixture, startRedisWorkers } from './fixture.js';

const CRASH = 'agent worker exited (signal SIGKILL)';
let f: RedisWorkersFixture;
const clients = new Set<Redis>();

beforeAll(async () => {
  f = await startRedisWorkers('drawbridge-redis-workers-crash-', {
    limits: { maxConnectionsPerIdentity: 4 },
    auditFifo: true,
  });
}, 60_000);
afterAll(async () => {
  clients.forEach((c) => c.disconnect());
  await f?.stop();
});

/** An alice session that has run SET `key`, and the worker process holding it. */
async function alice(key: string): Promise<{ c: Redis; worker: number; key: string }> {
  const c = ioredisAt(f.agent.port, f.pki.tls('alice'), clients, { username: 'app', password: 'x' });
  expect(await c.set(key, 'v')).toBe('OK');
  const localPort = (c as unknown as { stream: { localPort: number } }).stream.localPort;
  const worker = await f.agent.ownerOf(localPort);
  if (worker === undefined) throw new Error('no worker holds the session');
  return { c, worker, key };
}

it("ends a killed worker's sessions in the audit log, frees their slots and serves on", async () => {
  // alice's limit is 4: round-robin puts 2 on each worker.
  const sessions = [];
  for (let i = 0; i < 4; i++) sessions.push(await alice(`crash:${i}`));
  const victim = sessions[0]!.worker;
  const doomed = sessions.filter((s) => s.worker === victim);
  expect(doomed).toHaveLength(2);
  // Past the worker's audit batching (5 ms): what it has handed over must outlive it.
  await sleep(100);
  const closed = doomed.map((s) => new Promise((resolve) => s.c.once('end', resolve)));
  await f.agent.killWorker(victim);
  await Promise.all(closed);

  const text = await f.agent.metricsText();
  expect(metricValue(text, 'drawbridge_sessions_active', 'protocol="redis"')).toBe(2);
  expect(metricValue(text, 'drawbridge_agent_worker_restarts_total')).toBe(1);
  // The dead worker's two slots are free: alice gets two more sessions, wherever they land.
  for (let i = 4; i < 6; i++) await alice(`crash:${i}`);

  let events = await f.agent.auditEvents();
  for (let i = 0; i < 50 && events.filter((e) => e.reason === CRASH).length < 2; i++) {
    await sleep(100);
    events = await f.agent.auditEvents();
  }
  const sessionOf = (key: string) =>
    events.find((e) => e.type === 'command' && JSON.stringify(e.args).includes(key))?.sessionId;
  for (const { key } of doomed) {
    const own = events.filter((e) => e.sessionId === sessionOf(key));
    // ioredis's own commands (HELLO, INFO...) and the SET, then the primary's session.end.
    expect(own[0]?.type).toBe('session.start');
    expect(own.filter((e) => e.type === 'session.end')).toHaveLength(1);
    expect(own.at(-1)).toMatchObject({ type: 'session.end', reason: CRASH, database: 'cache' });
    expect(own.at(-1)).toMatchObject({ protocol: 'redis', user: 'alice', dbUser: 'app' });
  }
  expect(events.filter((e) => e.reason === CRASH)).toHaveLength(2);
  for (const s of sessions.filter((x) => x.worker !== victim)) {
    expect(events.filter((e) => e.sessionId === sessionOf(s.key)).map((e) => e.type)).not.toContain(
      'session.end',
    );
    expect(await s.c.get(s.key)).toBe('v');
  }
}, 60_000);

it('drains to the FIFO at shutdown: every session ends once, in whole lines', async () => {
  clients.forEach((c) => c.disconnect());
  expect(await f.agent.stop()).toBe(0);
  const text = await f.agent.auditText();
  expect(text.endsWith('\n')).toBe(true);
  const events = await f.agent.auditEvents();
  const started = events.filter((e) => e.type === 'session.start').map((e) => e.sessionId);
  const ended = events.filter((e) => e.type === 'session.end').map((e) => e.sessionId);
  expect(started).toHaveLength(6);
  expect([...ended].sort()).toEqual([...started].sort());
  expect(events.filter((e) => e.reason === CRASH)).toHaveLength(2);
}, 30_000);
