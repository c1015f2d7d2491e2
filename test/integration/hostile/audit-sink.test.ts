/**
 * An audit log that stops taking events — a FIFO whose reader never reads, a full disk — through the
 * real agent in front of a real Redis 7. Required mode (the default): the session stops being read,
 * nothing more runs on the server, and the session ends with a clear error when the stall outlasts its
 * timeout; once the log reads again, everything held is written exactly once and the session goes on.
 * Best-effort: commands go on, events past the buffer are dropped and counted. Memory stays bounded.
 * The same for PostgreSQL with the log on a device that is always full (/dev/full: ENOSPC). When the
 * platform enforces its mode (Helm agents.audit.enforce: --audit-mode-enforced), an in-cluster agent
 * keeps required over a Database's best-effort.
 */
import { closeSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { snapshotOf } from '../../../src/agent/config-file.js';
import { runInClusterAgent } from '../../../src/agent/incluster.js';
import type { StateSource } from '../../../src/agent/incluster-watch.js';
import { loadConfigFile } from '../../../src/api/config.js';
import { agentParts } from '../../../src/wiring.js';
import { type TestAgent, startTestAgent, writeAgentConfig } from '../../support/agent.js';
import { type Fixture as PgFixture, baseDocs, pgClient, startFixture } from '../postgres/fixture.js';
import { type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { fifoReader, pipeline, readNow, replies, settled, until } from './audit-support.js';

let f: RedisFixture;
let dir: string;
const readers: number[] = [];

beforeAll(async () => {
  f = await startRedisFixture();
  dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-audit-sink-'));
});

afterEach(() => {
  for (const fd of readers.splice(0)) closeSync(fd);
});

afterAll(async () => {
  await f?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** A FIFO with a reader that holds it open and reads nothing (until `drain`): the agent's writes block. */
function stuckFifo(name: string): { path: string; drain(): string } {
  const fifo = path.join(dir, name);
  const fd = fifoReader(fifo);
  readers.push(fd);
  return {
    path: fifo,
    /** Reads what is in the FIFO now. */
    drain: () => readNow(fd),
  };
}

/** A raw TLS session as alice, counting its +OK replies. */
async function session(agent: TestAgent) {
  const socket: TLSSocket = await f.rawAt(agent.port, 'alice');
  return { socket, state: replies(socket) };
}

async function metric(agent: TestAgent, name: string): Promise<number> {
  const text = await agent.running.agent.metrics.registry.metrics();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text);
  return Number(m?.[1] ?? NaN);
}

const keys = async (prefix: string) =>
  Number((await f.redis.cli(['eval', `return #redis.call('keys', '${prefix}:*')`, '0'])).trim());

const N = 4000;

/** An agent logging to a stuck FIFO, and alice's session that has just sent N SETs of `prefix`. */
async function flood(
  prefix: string,
  audit: { stallTimeout?: string; bufferBytes: number },
  databaseAudit?: object,
) {
  const fifo = stuckFifo(`${prefix}.fifo`);
  const docs = redisDocs(f.redis) as { kind: string; spec: Record<string, unknown> }[];
  if (databaseAudit) docs.find((d) => d.kind === 'Database')!.spec.audit = databaseAudit;
  const agent = await f.startAgent(docs, { audit: { path: fifo.path, ...audit } });
  const { socket, state } = await session(agent);
  socket.write(pipeline(prefix, N));
  return { fifo, agent, socket, state };
}

describe('audit mode required (default)', () => {
  it('stops reading the session while the log is stuck, then ends it with a clear error', async () => {
    const { fifo, agent, state } = await flood('held', { stallTimeout: '4s', bufferBytes: 256 * 1024 });
    const ran = await settled(() => state.ok);
    expect(ran).toBeGreaterThan(0);
    expect(ran).toBeLessThan(N); // paused: the rest was never read
    expect(await keys('held')).toBe(ran); // and never reached the server
    expect(await metric(agent, 'drawbridge_audit_sessions_held')).toBe(1);
    expect(await metric(agent, 'drawbridge_audit_pending_bytes')).toBeLessThan(2 * 256 * 1024);

    await until('the session ends', () => state.closed);
    expect(state.text).toMatch(/-ERR the audit log has taken no events for 4s/);
    expect(state.text).toMatch(/an admin should check the agent's audit log destination/);
    expect(await keys('held')).toBe(ran);
    expect(await metric(agent, 'drawbridge_audit_events_dropped_total')).toBe(0);
    fifo.drain(); // let the agent's last writes through before it stops
    await agent.stop();
  });

  it('writes every held event exactly once when the log reads again, and the session goes on', async () => {
    const { fifo, agent, socket, state } = await flood('resume', {
      stallTimeout: '60s',
      bufferBytes: 256 * 1024,
    });
    expect(await settled(() => state.ok)).toBeLessThan(N);
    let log = '';
    await until('every command answered', () => {
      log += fifo.drain();
      return state.ok === N;
    });
    expect(state.closed).toBe(false);
    expect(await keys('resume')).toBe(N);
    socket.end();
    await until('the audit log has every command', () => {
      log += fifo.drain();
      return (log.match(/"command":"set"/g) ?? []).length >= N;
    });
    const sets = log
      .split('\n')
      .filter((l) => l.includes('"command":"set"'))
      .map((l) => (JSON.parse(l) as { args: string[] }).args[0]);
    expect(sets).toEqual(Array.from({ length: N }, (_, i) => `resume:${i}`));
    await agent.stop();
  });
});

describe('audit mode best-effort', () => {
  it("runs every command, drops the events the log cannot take and counts them (the Database's choice)", async () => {
    // The agent's default stays required: the Database's spec.audit.mode decides.
    const { fifo, agent, socket, state } = await flood(
      'dropped',
      { bufferBytes: 64 * 1024 },
      { mode: 'best-effort' },
    );
    await until('every command answered', () => state.ok === N).catch((err: Error) => {
      throw new Error(`${err.message}: ${state.ok} of ${N} +OK, closed ${state.closed}, told ${state.text}`);
    });
    expect(await keys('dropped')).toBe(N);
    expect(await metric(agent, 'drawbridge_audit_sessions_held')).toBe(0);
    const dropped = await metric(agent, 'drawbridge_audit_events_dropped_total');
    expect(dropped).toBeGreaterThan(N / 2);
    expect(await metric(agent, 'drawbridge_audit_pending_bytes')).toBeLessThan(64 * 1024 + 96 * 1024);
    socket.end();
    fifo.drain();
    await agent.stop();
  });
});

describe('audit mode enforced by the platform (Helm agents.audit.enforce)', () => {
  it("keeps required over a Database's best-effort: on a full disk the flood is held, then the session ends", async () => {
    // An in-cluster agent as the controller starts it, fed the state its watches would give.
    const tlsDir = path.join(dir, 'enforced');
    await mkdir(tlsDir);
    const read = (name: string) => readFile(path.join(f.agent.dir, name), 'utf8');
    const tls = {
      certPem: await read('tls.crt'),
      keyPem: await read('tls.key'),
      clientCaPem: await read('client-ca.crt'),
    };
    await writeFile(path.join(tlsDir, 'ca.crt'), tls.clientCaPem);
    const docs = redisDocs(f.redis) as { kind: string; spec: Record<string, unknown> }[];
    docs.find((d) => d.kind === 'Database')!.spec.audit = { mode: 'best-effort', stallTimeout: '2s' };
    const { configPath } = await writeAgentConfig(tlsDir, { database: 'cache', docs, tls });
    const source: StateSource = {
      initial: snapshotOf(await loadConfigFile(configPath), configPath),
      onUpdate: () => undefined,
      tokenReview: () => Promise.reject(new Error('no workload tokens in this test')),
      stop: async () => undefined,
    };
    const lines: string[] = [];
    const log = pino({ level: 'warn' }, { write: (line: string) => void lines.push(line) });
    const running = await runInClusterAgent({
      database: 'shop/cache',
      listen: '127.0.0.1:0',
      tlsDir,
      source,
      log,
      parts: agentParts,
      audit: '/dev/full',
      auditMode: 'required',
      auditModeEnforced: true,
    });
    try {
      const socket: TLSSocket = await f.rawAt(running.port, 'alice');
      const state = replies(socket);
      socket.write(pipeline('enforced', N));
      await until('the session ends', () => state.closed);
      // The Database's stallTimeout stays its own.
      expect(state.text).toMatch(/-ERR the audit log has taken no events for 2s/);
      expect(state.ok).toBeLessThan(N);
      expect(await keys('enforced')).toBeLessThan(N);
      // Told once, at start, why the Database's mode is not the agent's.
      const warned = lines.filter((l) => l.includes('spec.audit.mode is ignored'));
      expect(warned).toHaveLength(1);
      expect(warned[0]).toMatch(/"requested":"best-effort","mode":"required".*agents\.audit\.enforce/);
    } finally {
      await running.stop();
    }
  });
});

describe('PostgreSQL with the audit log on a full disk', () => {
  let pgf: PgFixture;
  beforeAll(async () => {
    pgf = await startFixture();
  });
  afterAll(async () => {
    await pgf?.stop();
  });

  const agentOn = (mode: 'required' | 'best-effort') =>
    startTestAgent({
      database: 'orders-pg',
      docs: baseDocs(pgf.pg.port, pgf.pg.ca.certPem),
      tls: pgf.agentTls,
      audit: { path: '/dev/full', mode, stallTimeout: '3s', bufferBytes: 64 * 1024 },
    });
  const client = (agent: TestAgent) => {
    const c = pgClient({ ...pgf, agent }, pgf.people.alice, 'alice', 'orders');
    c.on('error', () => undefined);
    return c;
  };
  const tableExists = async (name: string) =>
    (await pgf.pg.admin(`select count(*) from pg_tables where tablename = '${name}'`, 'orders')).trim() ===
    '1';

  it('required: a statement waits, never runs, and the session ends with SQLSTATE 53000', async () => {
    const agent = await agentOn('required');
    const c = client(agent);
    await c.connect(); // session.start is the first event the disk refuses
    await until('sessions held', async () => (await metric(agent, 'drawbridge_audit_sessions_held')) === 1);
    const started = Date.now();
    const err = (await c.query('create table audit_probe_required (x int)').catch((e: unknown) => e)) as {
      code?: string;
      message: string;
    };
    expect(err, String(err)).toMatchObject({ code: '53000' });
    expect(err.message).toMatch(/the audit log has taken no events for 3s \(ENOSPC\)/);
    expect(Date.now() - started).toBeGreaterThan(2000);
    expect(await tableExists('audit_probe_required')).toBe(false);
    expect(await metric(agent, 'drawbridge_audit_write_errors_total')).toBeGreaterThan(0);
    await agent.stop();
  });

  it('best-effort: statements run, the refused events are counted, memory stays bounded', async () => {
    const agent = await agentOn('best-effort');
    const c = client(agent);
    await c.connect();
    const filler = 'x'.repeat(2000);
    for (let i = 0; i < 300; i++) await c.query(`select '${filler}' as n${i}`);
    await c.query('create table audit_probe_best_effort (x int)');
    await c.end();
    expect(await tableExists('audit_probe_best_effort')).toBe(true);
    expect(await metric(agent, 'drawbridge_audit_write_errors_total')).toBeGreaterThan(0);
    expect(await metric(agent, 'drawbridge_audit_events_dropped_total')).toBeGreaterThan(0);
    expect(await metric(agent, 'drawbridge_audit_pending_bytes')).toBeLessThan(64 * 1024 + 96 * 1024);
    await agent.stop();
  });
});
