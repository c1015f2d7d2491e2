// An agent of two worker processes (`--workers 2`) in front of the real PostgreSQL: sessions spread
// over both, a CancelRequest accepted by the worker that does not hold the session still cancels (and
// a wrong secret does not), revocation ends sessions on both, a broken edit of the config is refused
// once (the primary alone parses the file), one /metrics sums both, the audit log holds whole lines, a
// killed worker comes back (the primary ends its sessions in the audit log), and SIGTERM drains.
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { AuditEvent } from '../../../src/agent/audit.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cancelRequest } from '../../../src/engines/postgres/serializer.js';
import { type WorkersAgent, metricValue } from '../../support/agent-workers.js';
import { type Fixture, baseDocs, pgClient, startFixture, startWorkersAgentFor, user } from './fixture.js';

let f: Fixture;
let agent: WorkersAgent;
const clients: pg.Client[] = [];
/** Sessions still open, by the worker holding them (a killed worker's session.end the primary writes). */
const live = new Map<pg.Client, number>();
let lostWithWorker = 0;
const CRASH = 'agent worker exited (signal SIGKILL)';

beforeAll(async () => {
  f = await startFixture();
  agent = await startWorkersAgentFor(f);
}, 60_000);
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await agent?.stop();
  await f?.stop();
});

/** A connected pg client through the workers agent, and the worker process holding it. */
async function session(who: 'alice' | 'dave' = 'alice'): Promise<{ c: pg.Client; worker: number }> {
  const c = pgClient({ ...f, agent: { ...f.agent, port: agent.port } }, f.people[who], 'alice', 'orders');
  c.on('error', () => undefined);
  await c.connect();
  clients.push(c);
  const localPort = (c as unknown as { connection: { stream: { localPort: number } } }).connection.stream
    .localPort;
  let worker: number | undefined;
  for (let i = 0; i < 50 && worker === undefined; i++) {
    worker = await agent.ownerOf(localPort);
    if (worker === undefined) await sleep(20);
  }
  if (worker === undefined) throw new Error('no worker holds the session');
  live.set(c, worker);
  return { c, worker };
}

/** One session on each worker (round-robin hands them out in turn; more are opened until both hold one). */
async function onBothWorkers(who: 'alice' | 'dave' = 'alice') {
  const byWorker = new Map<number, pg.Client>();
  for (let i = 0; i < 8 && byWorker.size < 2; i++) {
    const s = await session(who);
    if (!byWorker.has(s.worker)) byWorker.set(s.worker, s.c);
  }
  expect(byWorker.size).toBe(2);
  return [...byWorker.entries()];
}

/** Sends a plaintext CancelRequest on a connection accepted by a worker other than `not`. */
async function cancelFromOtherWorker(not: number, processId: number, secretKey: number): Promise<number> {
  for (let attempt = 0; attempt < 10; attempt++) {
    const socket = connect({ host: '127.0.0.1', port: agent.port });
    socket.on('error', () => undefined);
    await new Promise((resolve) => socket.once('connect', resolve));
    let owner: number | undefined;
    for (let i = 0; i < 50 && owner === undefined; i++) {
      owner = await agent.ownerOf(socket.localPort!);
      if (owner === undefined) await sleep(10);
    }
    if (owner === undefined || owner === not) {
      socket.destroy();
      continue;
    }
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.end(cancelRequest(processId, secretKey));
      socket.resume();
    });
    return owner;
  }
  throw new Error('no cancel connection landed on the other worker');
}

const keyOf = (c: pg.Client) => c as unknown as { processID: number; secretKey: number };

describe('postgres through 2 workers', () => {
  it('spreads sessions over both worker processes', async () => {
    const pids = await agent.workerPids();
    expect(pids).toHaveLength(2);
    const seen = new Set<number>();
    for (let i = 0; i < 4; i++) seen.add((await session()).worker);
    expect([...seen].sort()).toEqual([...pids].sort());
  });

  it('cancels a query when the CancelRequest lands on the other worker, and not with a wrong secret', async () => {
    const [worker, c] = (await onBothWorkers())[0]!;
    const { processID, secretKey } = keyOf(c);
    const started = Date.now();
    const result = c.query('select pg_sleep(30)').then(
      () => 'finished',
      (err: { code?: string }) => err.code,
    );
    await waitActive(processID);
    // A wrong secret from the other worker cancels nothing: the owner checks the key against its own.
    await cancelFromOtherWorker(worker, processID, secretKey ^ 1);
    await sleep(500);
    expect(await f.pg.admin(`select state from pg_stat_activity where pid = ${processID}`)).toContain(
      'active',
    );
    const by = await cancelFromOtherWorker(worker, processID, secretKey);
    expect(by).not.toBe(worker);
    expect(await result).toBe('57014');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('sums both workers in one /metrics scrape', async () => {
    const text = await agent.metricsText();
    const established = metricValue(text, 'drawbridge_sessions_total', 'outcome="established"');
    const active = metricValue(text, 'drawbridge_sessions_active');
    expect(established).toBe(clients.length);
    expect(active).toBe(clients.length);
    expect(metricValue(text, 'drawbridge_agent_workers')).toBe(2);
    expect(metricValue(text, 'drawbridge_build_info')).toBe(1);
    expect(text).toContain('database="orders-pg"');
  });

  it('revoking a DatabaseUser ends its sessions on both workers', async () => {
    const sessions = await onBothWorkers('dave');
    const ended = sessions.map(
      ([, c]) => new Promise<string>((resolve) => c.once('error', (err: Error) => resolve(err.message))),
    );
    const docs = baseDocs(f.pg.port, f.pg.ca.certPem).filter(
      (d) => (d as { metadata: { name: string } }).metadata.name !== 'dave',
    );
    await agent.writeDocs([...docs, user('dave', ['not-prod'], {})]);
    const messages = await Promise.race([Promise.all(ended), sleep(10_000).then(() => ['not ended'])]);
    for (const m of messages) expect(m).toContain('access revoked');
    for (const [, c] of sessions) live.delete(c);
  });

  it('refuses a broken edit of the config once, in the primary; both workers keep the last good one', async () => {
    const logged = () => agent.logs().split('config reload failed; keeping the previous config').length - 1;
    const before = logged();
    const docs = baseDocs(f.pg.port, f.pg.ca.certPem);
    await agent.writeDocs([...docs, user('eve', ['no-such-role'], {})]);
    for (let i = 0; i < 50 && logged() === before; i++) await sleep(100);
    await sleep(1_500); // a worker that parsed the file itself would log it too by now
    expect(logged() - before).toBe(1);
    expect(agent.logs()).toContain('names role \\"no-such-role\\", which is not in the file');
    // dave's revocation (the last good config) still holds on both workers; alice still gets in on both.
    for (let i = 0; i < 2; i++) await expect(session('dave')).rejects.toThrow(/not allowed|denied|access/i);
    await onBothWorkers('alice');
    // The file stays broken for the tests below: the worker killed next starts from the primary's last
    // good config (one that parsed the file itself would exit at start, again and again).
  });

  it('writes every audit line whole, each session in order', async () => {
    await sleep(100);
    const events = await wholeAuditLines();
    const starts = events.filter((e) => e.type === 'session.start');
    expect(starts.length).toBe(clients.length);
    for (const { sessionId } of starts) {
      const own = events.filter((e) => e.sessionId === sessionId).map((e) => e.type);
      expect(own[0]).toBe('session.start');
    }
  });

  it('starts a killed worker again, counted and logged; its sessions end in the audit log', async () => {
    const [victim] = await agent.workerPids();
    lostWithWorker = [...live.values()].filter((w) => w === victim).length;
    const survivors = live.size - lostWithWorker;
    await agent.killWorker(victim!);
    const text = await agent.metricsText();
    expect(metricValue(text, 'drawbridge_agent_worker_restarts_total')).toBe(1);
    expect(metricValue(text, 'drawbridge_sessions_active')).toBe(survivors);
    expect(agent.logs()).toContain('agent worker exited; starting it again');
    const crashed = (await wholeAuditLines()).filter((e) => e.reason === CRASH);
    expect(crashed).toHaveLength(lostWithWorker);
    for (const e of crashed) {
      expect(e).toMatchObject({ type: 'session.end', database: 'orders-pg', protocol: 'postgres' });
      expect(e).toMatchObject({ user: 'alice', dbUser: 'alice', dbName: 'orders' });
    }
    for (const c of [...live.keys()]) if (live.get(c) === victim) live.delete(c);
    const seen = new Set<number>();
    for (let n = 0; n < 4; n++) seen.add((await session()).worker);
    expect(seen.size).toBe(2);
  });

  it('drains on SIGTERM: a running query finishes, then the agent exits 0', async () => {
    const { c } = await session();
    const result = c.query('select pg_sleep(1) as slept').then(
      (r) => r.rowCount,
      (err: Error) => err.message,
    );
    await sleep(200);
    const stopped = agent.stop();
    expect(await result).toBe(1);
    expect(await stopped).toBe(0);
    // Every session ended with one session.end, last of its events, the killed worker's by the primary.
    const events = await wholeAuditLines();
    const ends = events.filter((e) => e.type === 'session.end');
    const started = events.filter((e) => e.type === 'session.start').map((e) => e.sessionId);
    expect(ends.map((e) => e.sessionId).sort()).toEqual([...started].sort());
    for (const id of started)
      expect(events.filter((e) => e.sessionId === id).at(-1)?.type).toBe('session.end');
    expect(ends.filter((e) => e.reason === CRASH)).toHaveLength(lostWithWorker);
    expect(lostWithWorker).toBeGreaterThan(0);
  }, 30_000);
});

/** The audit log's events, after checking it ends with a whole line (each one must parse). */
async function wholeAuditLines(): Promise<AuditEvent[]> {
  expect((await agent.auditText()).endsWith('\n')).toBe(true);
  return agent.auditEvents();
}

async function waitActive(pid: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const r = await f.pg.admin(`select state from pg_stat_activity where pid = ${pid}`);
    if (r.includes('active')) return;
    await sleep(50);
  }
  throw new Error(`backend ${pid} never became active`);
}
