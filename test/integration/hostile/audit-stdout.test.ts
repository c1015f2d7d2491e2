/**
 * The audit log on stdout, as in Kubernetes: a pipe that the container runtime reads. Here the agent
 * CLI runs in front of a real Redis 7 with its stdout a pipe this test holds, and the test stops
 * reading it (a log pipeline that stalls). One process and two workers (the primary relays the
 * workers' lines). Required mode: the session stops being read and nothing more reaches the server;
 * /metrics and /healthz keep answering; once the pipe is read again every event is written exactly
 * once, in order, and the agent's own log lines (pino, the same pipe) are all there too. Best-effort:
 * every command runs, the events the pipe cannot take are dropped and counted.
 */
import { closeSync, constants, openSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeAgentConfig } from '../../support/agent.js';
import { type AgentProcesses, metricValue, spawnWorkersAgent } from '../../support/agent-workers.js';
import { freePort } from '../../support/ports.js';
import { type RedisServer, issuePeopleTls, rawTls, startRedis } from '../../support/redis.js';
import { PEOPLE, redisDocs } from '../redis/fixture.js';
import { fifoReader, pipeline, readNow, replies, settled, until } from './audit-support.js';

let pki: Awaited<ReturnType<typeof issuePeopleTls>>;
let redis: RedisServer;

beforeAll(async () => {
  pki = await issuePeopleTls(PEOPLE, 'cache agent', 'drawbridge-audit-stdout-');
  redis = await startRedis();
}, 60_000);

afterAll(async () => {
  await redis?.stop();
  if (pki) await rm(pki.dir, { recursive: true, force: true });
});

/** A pipe (a FIFO) for the agent's stdout, read only when `drain` is called. */
function stdoutPipe(dir: string) {
  const fifo = path.join(dir, 'stdout');
  const reader = fifoReader(fifo);
  const writer = openSync(fifo, constants.O_WRONLY); // does not wait: the reader is open
  let text = '';
  return {
    writer,
    /** Reads what is in the pipe now; returns everything read so far. */
    drain: () => (text += readNow(reader)),
    close: () => closeSync(reader),
  };
}

type Audit = { mode?: 'required' | 'best-effort'; stallTimeout?: string; bufferBytes: number };

/** The agent CLI with `--workers N`, its audit on stdout (`-`), stdout the pipe returned. */
async function agentOnPipe(workers: number, audit: Audit) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-audit-stdout-'));
  const port = await freePort();
  const metrics = `127.0.0.1:${await freePort()}`;
  const pipe = stdoutPipe(dir);
  const { configPath } = await writeAgentConfig(dir, {
    database: 'cache',
    docs: redisDocs(redis),
    tls: pki.agentTls,
    audit: { ...audit, path: '-' },
    listen: `127.0.0.1:${port}`,
    metrics,
  });
  const args = ['agent', '--config', configPath, '--workers', String(workers)];
  const none = async () => '';
  const spawned = spawnWorkersAgent(args, {
    dir,
    port,
    metrics,
    workers,
    readAudit: none,
    finalAudit: none,
    stdout: pipe.writer,
  });
  closeSync(pipe.writer); // the agent has its own copy
  // Startup's log lines stay in the pipe until the test drains it: far from full.
  const agent = await spawned;
  return { agent, pipe };
}

const N = 8000;

/** Alice's raw TLS session, which has just sent N SETs of `prefix`; counts its +OK replies. */
async function flood(agent: AgentProcesses, prefix: string) {
  const socket: TLSSocket = await rawTls(agent.port, pki.tls('alice'));
  const state = replies(socket);
  socket.write(pipeline(prefix, N));
  return { socket, state };
}

const metric = async (agent: AgentProcesses, name: string) =>
  metricValue(await agent.metricsText(), name) ?? NaN;
const healthz = async (agent: AgentProcesses) =>
  (await fetch(agent.metricsUrl.replace(/\/metrics$/, '/healthz'), { signal: AbortSignal.timeout(2000) }))
    .status;
const keys = async (prefix: string) =>
  Number((await redis.cli(['eval', `return #redis.call('keys', '${prefix}:*')`, '0'])).trim());

/** Stops the agent, reading its stdout meanwhile (its last events and log lines); its exit code. */
async function stop(agent: AgentProcesses, pipe: { drain(): string }) {
  const stopped = agent.stop();
  await until('the agent exits', () => {
    pipe.drain();
    return agent.child.exitCode !== null;
  });
  return stopped;
}

/** The pipe's lines: audit events (a `type`) and the agent's log lines (a `level`), each parsed. */
function split(text: string) {
  const lines = text.split('\n').filter(Boolean);
  const parsed = lines.map((l) => {
    try {
      return JSON.parse(l) as Record<string, unknown>;
    } catch {
      return { broken: l.length > 600 ? `${l.slice(0, 300)} … ${l.slice(-300)}` : l };
    }
  });
  return {
    events: parsed.filter((l) => 'type' in l),
    logs: parsed.filter((l) => 'level' in l),
    other: parsed.filter((l) => !('type' in l) && !('level' in l)),
  };
}

describe.each([1, 2])('audit log on stdout, a pipe, %i worker(s)', (workers) => {
  it('required: holds the session while the pipe is full, answers probes, then writes every event once, in order', async () => {
    const { agent, pipe } = await agentOnPipe(workers, { stallTimeout: '60s', bufferBytes: 128 * 1024 });
    const prefix = `held${workers}`;
    try {
      const { socket, state } = await flood(agent, prefix);
      const ran = await settled(() => state.ok);
      expect(ran).toBeGreaterThan(0);
      expect(ran).toBeLessThan(N); // held: the rest was never read
      expect(await keys(prefix)).toBe(ran); // and never reached the server
      expect(await metric(agent, 'drawbridge_audit_sessions_held')).toBe(1);
      expect(await healthz(agent)).toBe(200); // the event loop answers while the pipe is full
      expect(await metric(agent, 'drawbridge_audit_events_dropped_total')).toBe(0);

      const read = () => {
        pipe.drain();
        return state.ok === N;
      };
      await until('every command answered', read, 30_000);
      expect(state.closed).toBe(false);
      expect(state.text).toBe('');
      expect(await keys(prefix)).toBe(N);
      socket.end();
      const logged = () => pipe.drain().split(`"${prefix}:`).length > N;
      await until('the audit log has every command', logged, 30_000);
      expect(await stop(agent, pipe)).toBe(0);
      const { events, logs, other } = split(pipe.drain());
      expect(other).toEqual([]); // every line whole
      const sets = events
        .filter((e) => e.command === 'set' && String((e.args as string[])[0]).startsWith(`${prefix}:`))
        .map((e) => (e.args as string[])[0]);
      expect(sets).toEqual(Array.from({ length: N }, (_, i) => `${prefix}:${i}`));
      // The log lines written while the pipe was full were kept and written, not lost.
      const said = logs.map((l) => l.msg);
      expect(said).toContain('audit log behind: sessions wait for it (audit mode required)');
      expect(said).toContain('audit log caught up: sessions resume');
    } finally {
      pipe.close();
    }
  }, 90_000);

  it('best-effort: every command runs, the events the pipe cannot take are dropped and counted', async () => {
    const { agent, pipe } = await agentOnPipe(workers, { mode: 'best-effort', bufferBytes: 64 * 1024 });
    const prefix = `dropped${workers}`;
    try {
      const { socket, state } = await flood(agent, prefix);
      await until('every command answered', () => state.ok === N, 30_000).catch((err: Error) => {
        throw new Error(
          `${err.message}: ${state.ok} of ${N} +OK, closed ${state.closed}, told ${state.text}`,
        );
      });
      expect(await keys(prefix)).toBe(N);
      expect(await metric(agent, 'drawbridge_audit_sessions_held')).toBe(0);
      expect(await metric(agent, 'drawbridge_audit_events_dropped_total')).toBeGreaterThan(N / 4);
      expect(await healthz(agent)).toBe(200);
      socket.end();
      expect(await stop(agent, pipe)).toBe(0);
      const { events, other } = split(pipe.drain());
      expect(other).toEqual([]);
      const sets = events.filter((e) => e.command === 'set').length;
      expect(sets).toBeGreaterThan(0);
      expect(sets).toBeLessThan(N);
    } finally {
      pipe.close();
    }
  }, 90_000);
});
