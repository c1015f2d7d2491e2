// A standalone agent run as the CLI runs it, `drawbridge agent --config agent.yaml --workers N`, in its
// own process (node:cluster forks workers from the entry script, so it cannot run inside the test
// process); spawnWorkersAgent runs any other agent command line alike (in cluster: `--database`). Which worker holds a connection is read from the kernel: the worker process whose
// descriptors include the agent-side socket of that TCP connection (/proc/net/tcp, /proc/PID/fd).
// With `auditFifo` the audit log is a FIFO this process reads (not a regular file: the primary relays
// the workers' lines, as it does to stdout), otherwise a file each worker appends to.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, open, readFile, readdir, readlink, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { AuditEvent } from '../../src/agent/audit.js';
import { type TestAgentOptions, writeAgentConfig } from './agent.js';
import { freePort, withFreshPorts } from './ports.js';

const CLI = path.resolve('dist/src/cli/drawbridge.js');

export interface WorkersAgent extends AgentProcesses {
  writeDocs(docs: object[]): Promise<void>;
}

/** An agent of a primary and its workers, run as the CLI runs it. */
export interface AgentProcesses {
  readonly port: number;
  readonly metricsUrl: string;
  readonly child: ChildProcess;
  /** Everything the agent processes logged (stdout and stderr, all workers). */
  logs(): string;
  auditEvents(): Promise<AuditEvent[]>;
  /** The raw audit log, to check every line is whole (after stop: as the agent left it). */
  auditText(): Promise<string>;
  /** The worker processes' ids, from the primary's children. */
  workerPids(): Promise<number[]>;
  /** The worker process holding the agent side of the TCP connection whose client port is `clientPort`. */
  ownerOf(clientPort: number): Promise<number | undefined>;
  metricsText(): Promise<string>;
  /** SIGTERM to the primary; resolves with its exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL to worker `pid`; resolves once a new worker has taken its place and listens. */
  killWorker(pid: number): Promise<void>;
}

export async function startWorkersAgent(
  opts: Omit<TestAgentOptions, 'log' | 'parts' | 'metrics'> & {
    workers: number;
    auditFifo?: boolean;
    /** More `drawbridge agent` arguments, Node's own options, and environment (spawnWorkersAgent's). */
    args?: string[];
    nodeArgs?: string[];
    env?: Record<string, string>;
    /** The Node binary to run it with (this test's by default). */
    node?: string;
  },
): Promise<WorkersAgent> {
  // Its ports are picked free, then bound by the agent a moment later: another process may take one in
  // between, and then it starts again on fresh ones.
  return withFreshPorts(() => startWorkersAgentOnce(opts));
}

async function startWorkersAgentOnce(opts: Parameters<typeof startWorkersAgent>[0]): Promise<WorkersAgent> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-workers-'));
  const port = await freePort();
  const metrics = `127.0.0.1:${await freePort()}`;
  const fifo = opts.auditFifo ? await readFifo(path.join(dir, 'audit.fifo')) : undefined;
  const audit = fifo ? { ...opts.audit, path: fifo.path } : opts.audit;
  const files = await writeAgentConfig(dir, { ...opts, audit, listen: `127.0.0.1:${port}`, metrics });
  const readAudit = async () => (fifo ? fifo.text() : readFile(files.auditPath, 'utf8'));
  const finalAudit = async () => (fifo ? fifo.close() : readAudit());
  const args = [
    'agent',
    '--config',
    files.configPath,
    '--workers',
    String(opts.workers),
    ...(opts.args ?? []),
  ];
  const agent = await spawnWorkersAgent(args, {
    dir,
    port,
    metrics,
    workers: opts.workers,
    readAudit,
    finalAudit,
    nodeArgs: opts.nodeArgs,
    env: opts.env,
    node: opts.node,
  }).catch(async (err: unknown) => {
    await fifo?.close();
    throw err;
  });
  return { ...agent, writeDocs: files.writeDocs };
}

/**
 * `drawbridge agent ...args` as its own process, ready once `workers` workers listen. `dir` (removed
 * at stop) holds what it uses; `port` and `metrics` are what args tell it to listen on.
 */
export async function spawnWorkersAgent(
  args: string[],
  o: {
    dir: string;
    port: number;
    metrics: string;
    workers: number;
    /** The audit log as it is now, and once the agent has exited. */
    readAudit(): Promise<string>;
    finalAudit(): Promise<string>;
    /** Node's own flags (e.g. `--import`), which node:cluster gives the workers too. */
    nodeArgs?: string[];
    env?: Record<string, string>;
    node?: string;
    /** The agent's stdout: this descriptor (e.g. a pipe the test reads), not a pipe collected in logs(). */
    stdout?: number;
  },
): Promise<AgentProcesses> {
  const { dir, port, metrics, readAudit } = o;
  const child = spawn(o.node ?? process.execPath, [...(o.nodeArgs ?? []), CLI, ...args], {
    env: { ...process.env, DRAWBRIDGE_LOG_LEVEL: process.env.DRAWBRIDGE_LOG_LEVEL ?? 'info', ...o.env },
    stdio: ['ignore', o.stdout ?? 'pipe', 'pipe'],
  });
  let logs = '';
  /** The audit log as the agent left it (its directory is removed once it has stopped). */
  let finalAudit: string | undefined;
  child.stdout?.on('data', (d) => (logs += d));
  child.stderr!.on('data', (d) => (logs += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const metricsUrl = `http://${metrics}/metrics`;
  const agent: AgentProcesses = {
    port,
    metricsUrl,
    child,
    logs: () => logs,
    auditText: async () => finalAudit ?? (await readAudit().catch(() => '')),
    async auditEvents() {
      const text = await agent.auditText();
      return text
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as AuditEvent);
    },
    async workerPids() {
      const text = await readFile(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8');
      return text.split(' ').filter(Boolean).map(Number);
    },
    async ownerOf(clientPort) {
      const inode = await socketInode(port, clientPort);
      if (inode === undefined) return undefined;
      for (const pid of await agent.workerPids()) {
        const fds = await readdir(`/proc/${pid}/fd`).catch(() => []);
        for (const fd of fds) {
          if ((await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')) === `socket:[${inode}]`) return pid;
        }
      }
      return undefined;
    },
    async metricsText() {
      const res = await fetch(metricsUrl);
      return res.text();
    },
    async killWorker(pid) {
      process.kill(pid, 'SIGKILL');
      for (let i = 0; i < 100; i++) {
        const pids = await agent.workerPids();
        const text = await agent.metricsText().catch(() => '');
        const up = metricValue(text, 'drawbridge_agent_workers');
        if (pids.length === o.workers && !pids.includes(pid) && up === o.workers) return;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`the killed worker was not replaced:\n${logs}`);
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const code = await exited;
      finalAudit ??= await o.finalAudit().catch(() => '');
      await rm(dir, { recursive: true, force: true });
      return code;
    },
  };
  // Ready: every worker listens (the primary's /healthz counts them, drawbridge_agent_workers says how
  // many); one process (no primary): its /healthz answers 200.
  const deadline = Date.now() + 20_000;
  const healthz = metricsUrl.replace(/\/metrics$/, '/healthz');
  const ready = async () =>
    o.workers === 1
      ? (await fetch(healthz).catch(() => undefined))?.status === 200
      : metricValue(await agent.metricsText().catch(() => ''), 'drawbridge_agent_workers') === o.workers;
  for (;;) {
    if (await ready()) return agent;
    if (child.exitCode !== null || Date.now() > deadline) {
      await agent.stop();
      throw new Error(`the agent did not start ${o.workers} workers:\n${logs}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The value of the first series of `name` (labels ignored) in a Prometheus text exposition. */
export function metricValue(text: string, name: string, labels = ''): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith(' ') || rest.startsWith('{')) || !rest.includes(labels)) continue;
    return Number(rest.slice(rest.lastIndexOf(' ') + 1));
  }
  return undefined;
}

/** A FIFO at `file`, read into memory; opened read-write, so neither side's open waits for the other. */
async function readFifo(file: string): Promise<{ path: string; text(): string; close(): Promise<string> }> {
  execFileSync('mkfifo', [file]);
  const handle = await open(file, 'r+');
  const stream = handle.createReadStream({ encoding: 'utf8' });
  let text = '';
  stream.on('data', (d) => (text += d));
  return {
    path: file,
    text: () => text,
    /** Once the agent has exited: everything it wrote, read up to a mark written after it, then closes. */
    async close() {
      await handle.write(END);
      for (let i = 0; i < 500 && !text.endsWith(END); i++) await new Promise((r) => setTimeout(r, 10));
      stream.destroy();
      return text.endsWith(END) ? text.slice(0, -END.length) : text;
    },
  };
}

const END = "# end of the agent's audit\n";

/** The inode of the agent-side socket of the loopback connection from `clientPort` to `agentPort`. */
async function socketInode(agentPort: number, clientPort: number): Promise<string | undefined> {
  const hex = (n: number) => n.toString(16).toUpperCase().padStart(4, '0');
  const local = `0100007F:${hex(agentPort)}`;
  const remote = `0100007F:${hex(clientPort)}`;
  const table = await readFile('/proc/net/tcp', 'utf8');
  for (const line of table.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f[1] === local && f[2] === remote) return f[9];
  }
  return undefined;
}
