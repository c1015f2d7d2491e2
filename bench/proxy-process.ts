// Every proxy the benches measure — this build's agent (one process or with workers), another build's
// (BENCH_AGENT_BEFORE), the bare Node TLS pipes — runs in a process of its own, started one way:
// `node OPTIONS SCRIPT ARGS` with the same Node options (the probe, the CLI launcher line's V8 flags,
// BENCH_AGENT_NODE_ARGS or BENCH_PIPE_NODE_ARGS: bench/idle-memory.ts), its logs written by the kernel
// to the starter's stderr (no process reads them), nothing else in it. So no target shares an event
// loop, a heap or a GC with another, and the CPU a bench charges a target is its own process's (an
// agent with workers: the primary's and its workers'). Before this, the Redis benches ran the agent in
// the environment process beside the agent-plainbe agent and the worker agent's supervisor: the agent
// was charged their leftovers and, against the same build in a process of its own, got ~0.92 of the
// throughput at 1.01–1.05× the CPU per request.
// BENCH_AUDIT=stdout: every agent writes its audit log to stdout ("-"), a pipe that a `cat` of its own
// drains (as a container runtime reads a pod's stdout); otherwise to a file in its directory.
// BENCH_MALLOC / BENCH_BEFORE_MALLOC: jemalloc (as the image, the default) or glibc (mallocEnv).
// BENCH_BEFORE_NODE_ARGS: the before agent's Node options in place of BENCH_AGENT_NODE_ARGS (agentArgs).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type TestAgentOptions, writeAgentConfig } from '../test/support/agent.js';
import { metricValue } from '../test/support/agent-workers.js';
import { freePort } from '../test/support/ports.js';
import { agentArgs, pipeNodeArgs } from './idle-memory.js';

const here = path.dirname(new URL(import.meta.url).pathname);

/** The CLI of a build: `dist` is its dist/ directory (this build's by default). */
export const cliOf = (dist = path.resolve(here, '..')): string => path.resolve(dist, 'src/cli/drawbridge.js');

export interface ProxyProcess {
  name: string;
  /** Where it listens on 127.0.0.1. */
  port: number;
  /** The process (an agent with workers: the primary, whose children are the workers). */
  child: ChildProcess;
}

export interface AgentProcessOptions extends Omit<TestAgentOptions, 'log' | 'parts' | 'metrics'> {
  /** Names the agent and its directory under `dir` (config, TLS files, audit log). */
  name: string;
  dir: string;
  /** The CLI to run (cliOf(dist)); this build's by default. */
  cli?: string;
  /** `--workers` (1: the agent alone in its process, as every single-process target runs). */
  workers?: number;
  /**
   * BENCH_AGENT_BEFORE's agent, run with BENCH_BEFORE_MALLOC and BENCH_BEFORE_NODE_ARGS (which may be
   * this very build beside itself with other options); any other build's (BENCH_AGENT_VARIANTS) runs as
   * the agent does.
   */
  before?: boolean;
  /** Where its audit log goes (default: BENCH_AUDIT's): a file in its directory, stdout, or a file on tmpfs. */
  auditTo?: AuditTo;
}

export type AuditTo = 'file' | 'stdout' | 'shm';

/** This machine's jemalloc (Debian's libjemalloc2, which the image preloads), if it has one. */
const JEMALLOC = readdirSync('/usr/lib')
  .filter((d) => d.endsWith('-linux-gnu'))
  .map((d) => `/usr/lib/${d}/libjemalloc.so.2`)
  .find((f) => existsSync(f));

/**
 * The allocator of a measured process, as its environment: the image preloads jemalloc (Dockerfile),
 * so every proxy here does too when this machine has it. BENCH_MALLOC=glibc runs them on glibc's malloc;
 * BENCH_BEFORE_MALLOC (default: as BENCH_MALLOC) the BENCH_AGENT_BEFORE agent, e.g. glibc to measure
 * the allocator itself against this build.
 */
function mallocEnv(before = false): Record<string, string> {
  const which = (before && process.env.BENCH_BEFORE_MALLOC) || process.env.BENCH_MALLOC || 'jemalloc';
  if (which === 'glibc') return { LD_PRELOAD: '' };
  if (which !== 'jemalloc') throw new Error(`BENCH_MALLOC=${which}: expected jemalloc or glibc`);
  if (!JEMALLOC) {
    console.warn(
      "bench: no libjemalloc.so.2 here (apt-get install libjemalloc2): glibc malloc, not the image's",
    );
    return { LD_PRELOAD: '' };
  }
  return { LD_PRELOAD: JEMALLOC };
}

/** `drawbridge agent --config` in its own process, once it listens (with workers: every worker). */
export async function startAgentProcess(o: AgentProcessOptions): Promise<ProxyProcess> {
  const { name, dir, cli = cliOf(), workers = 1, before = false, auditTo, ...config } = o;
  const own = path.join(dir, name);
  await mkdir(own);
  const port = await freePort();
  // Every agent serves /metrics as in production; a primary's says how many workers listen.
  const metrics = `127.0.0.1:${await freePort()}`;
  const to = auditTo ?? (process.env.BENCH_AUDIT === 'stdout' ? 'stdout' : 'file');
  const toStdout = to === 'stdout';
  const shm = to === 'shm' ? await mkdtemp('/dev/shm/drawbridge-bench-') : undefined;
  if (shm) shmDirs.push(shm);
  const auditPath = toStdout ? '-' : shm ? `${shm}/audit.jsonl` : undefined;
  const audit = auditPath ? { audit: { ...config.audit, path: auditPath } } : {};
  const { configPath } = await writeAgentConfig(own, {
    ...config,
    ...audit,
    listen: `127.0.0.1:${port}`,
    metrics,
  });
  const stdout = toStdout ? drainedPipe(path.join(own, 'stdout')) : 2;
  const env = { DRAWBRIDGE_LOG_LEVEL: 'warn', ...mallocEnv(before) };
  const child = startProcess(agentArgs(cli, configPath, workers, before), env, stdout);
  if (toStdout) closeSync(stdout);
  const allWorkers = async () =>
    workers === 1 ||
    metricValue(await (await fetch(`http://${metrics}/metrics`)).text(), 'drawbridge_agent_workers') ===
      workers;
  await untilListening(name, child, port, allWorkers);
  return { name, port, child };
}

/** A bare pipe, `node dist/bench/SCRIPT PORT ...args`, in its own process, once it listens. */
export async function startPipeProcess(name: string, script: string, args: string[]): Promise<ProxyProcess> {
  const port = await freePort();
  const child = startProcess(
    [...pipeNodeArgs(), path.resolve(here, script), String(port), ...args],
    mallocEnv(),
  );
  await untilListening(name, child, port, async () => true);
  return { name, port, child };
}

/** tmpfs directories of agents auditing there (auditTo 'shm'), removed by stopProcesses. */
const shmDirs: string[] = [];

/** Ends the processes (SIGTERM: agents drain and write any --cpu-prof profile) and waits for them. */
export async function stopProcesses(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(15_000)]);
      child.kill('SIGKILL');
    }),
  );
  await Promise.all(shmDirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
}

/** The write end of a FIFO at `fifo` that a `cat` reads to /dev/null (until the last writer exits). */
function drainedPipe(fifo: string): number {
  spawnSync('mkfifo', [fifo]);
  spawn('sh', ['-c', 'exec cat "$0" >/dev/null', fifo], { stdio: 'ignore' }).unref();
  return openSync(fifo, 'w'); // returns once cat has it open for reading
}

function startProcess(args: string[], env: Record<string, string> = {}, stdout = 2): ChildProcess {
  // stdin stays a pipe from this process: the bare pipes exit when it ends (this process is gone).
  const child = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['pipe', stdout, 2],
  });
  // And should this process die without stopping it (SIGKILL), a watchdog ends it.
  const watchdog = spawn(
    'sh',
    [
      '-c',
      'while kill -0 "$0" 2>/dev/null; do sleep 1; done; kill "$1" 2>/dev/null',
      `${process.pid}`,
      `${child.pid}`,
    ],
    { detached: true, stdio: 'ignore' },
  );
  watchdog.unref();
  return child;
}

async function untilListening(
  name: string,
  child: ChildProcess,
  port: number,
  ready: () => Promise<boolean>,
): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (child.exitCode !== null) throw new Error(`${name} exited (${child.exitCode}) as it started`);
    if ((await accepts(port)) && (await ready().catch(() => false))) return;
    await sleep(100);
  }
  await stopProcesses([child]);
  throw new Error(`${name} did not listen on 127.0.0.1:${port} within 30 s`);
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(false));
  });
}
