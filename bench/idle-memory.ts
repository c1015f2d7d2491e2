// The idle-memory part of the benches: what a proxy process holds with N idle sessions open, and where
// the bytes are. Each process runs bench/memory-probe.ts (agentNodeArgs, pipeNodeArgs), which reports its
// process.memoryUsage() on SIGUSR2: V8's heap (total reserved, used), memory outside it (external, of
// which ArrayBuffers: socket and TLS buffers) and RSS, whose remainder is code, OpenSSL and malloc.
import { existsSync, readFileSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Spread, formatSpread, spread } from './stats.js';

/** Node options that load the probe into a measured process. */
const MEMORY_PROBE_ARGS = [
  '--import',
  path.resolve(path.dirname(new URL(import.meta.url).pathname), 'memory-probe.js'),
];

const words = (text: string | undefined) => text?.split(' ').filter(Boolean) ?? [];

/**
 * The command line (after node) of an agent started from `cli` (a build's dist/src/cli/drawbridge.js)
 * with `configPath` (standalone) or other `agent` arguments (in cluster): the probe, the options on the
 * CLI's launcher line (`#!/usr/bin/env -S node --max-semi-space-size=2`: the agent runs with them as
 * the image and npm's bin start it; a build without any runs without), BENCH_AGENT_NODE_ARGS (e.g.
 * "--cpu-prof --cpu-prof-dir=/tmp/prof" profiles the agent; for the `before` agent BENCH_BEFORE_NODE_ARGS
 * when set, so one build can run beside itself with other options), then the CLI and its arguments:
 * `workers` processes (a build from before workers runs as one process and knows no --workers).
 */
export function agentArgs(
  cli: string,
  configPath: string | string[],
  workers: number,
  before = false,
): string[] {
  const hasWorkers = existsSync(path.join(path.dirname(cli), '../agent/workers/primary.js'));
  const { BENCH_AGENT_NODE_ARGS: agent, BENCH_BEFORE_NODE_ARGS: beforeArgs } = process.env;
  const nodeArgs = before && beforeArgs !== undefined ? beforeArgs : agent;
  return [
    ...MEMORY_PROBE_ARGS,
    ...launcherOptions(cli),
    ...words(nodeArgs),
    ...[cli, 'agent', ...(typeof configPath === 'string' ? ['--config', configPath] : configPath)],
    ...(hasWorkers ? ['--workers', String(workers)] : []),
  ];
}

/**
 * Node options of a bare pipe: the probe, this build's launcher options (the floor runs with the V8
 * heap the agent has: a smaller young generation costs GC per operation), then BENCH_PIPE_NODE_ARGS
 * (to profile the floor the same way).
 */
export function pipeNodeArgs(): string[] {
  const cli = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../src/cli/drawbridge.js');
  return [...MEMORY_PROBE_ARGS, ...launcherOptions(cli), ...words(process.env.BENCH_PIPE_NODE_ARGS)];
}

/** The Node options on a CLI's launcher line (`#!/usr/bin/env -S node --max-semi-space-size=2`). */
export function launcherOptions(cli: string): string[] {
  return words(readFileSync(cli, 'utf8').split('\n', 1)[0]).filter((w) => w.startsWith('--'));
}

const FIELDS = ['rss', 'heapTotal', 'heapUsed', 'external', 'arrayBuffers'] as const;
/** process.memoryUsage() of a measured process, in MB. */
export type Memory = Record<(typeof FIELDS)[number], number>;

/** Asks the probe in process `pid` for its memory usage. */
export async function memoryOf(pid: number): Promise<Memory> {
  const usage = await probeReport(pid);
  return Object.fromEntries(FIELDS.map((f) => [f, usage[f] / 2 ** 20])) as Memory;
}

/** The probe's report of process `pid`: its process.memoryUsage() (bytes), with BENCH_MEMORY_GC its modules. */
export async function probeReport(pid: number): Promise<NodeJS.MemoryUsage & { modules?: string[] }> {
  const file = path.join(os.tmpdir(), `drawbridge-memory-${pid}.json`);
  await rm(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  for (let i = 0; i < 100; i++) {
    await sleep(50);
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    await rm(file, { force: true });
    return JSON.parse(text) as NodeJS.MemoryUsage & { modules?: string[] };
  }
  throw new Error(`process ${pid} did not report its memory (is bench/memory-probe.js loaded?)`);
}

/** A process to measure and how to open one idle session to it. */
export interface IdleTarget {
  name: string;
  pid: number;
  /** Its memory when it had just started, for the fixed cost. */
  atStart: Memory;
  open(n: number): Promise<{ end(): Promise<unknown> }[]>;
}

export interface IdleResult {
  name: string;
  sessions: number;
  /** RSS with the sessions open, MB, one per round. */
  rss: number[];
}

/** The handshakes' garbage sits in V8's young generation until its memory reducer runs (~8 s idle). */
const SETTLE_MS = 15_000;

/**
 * `rounds` times: opens `n` idle sessions to each target in turn (the order rotating each round, as the
 * throughput rounds do), reads its memory once they have settled, and closes them. Prints each target's
 * memory at start and, as median (min–max) over the rounds, before and with the sessions and the bytes
 * per session (against the same round's 0 sessions). The processes live through every round, as an
 * agent lives through its sessions: a later round shows what the earlier rounds' sessions left behind.
 */
export async function measureIdle(targets: IdleTarget[], n: number, rounds = 1): Promise<IdleResult[]> {
  const seen = new Map(targets.map((t) => [t.name, { before: [] as Memory[], idle: [] as Memory[] }]));
  let sessions = n;
  for (let round = 0; round < rounds; round++) {
    const shift = round % targets.length;
    const order = [...targets.slice(shift), ...targets.slice(0, shift)];
    if (round % 2 === 1) order.reverse();
    const line: string[] = [];
    for (const t of order) {
      const before = await memoryOf(t.pid);
      const open = await t.open(n);
      sessions = open.length;
      await sleep(SETTLE_MS);
      const idle = await memoryOf(t.pid);
      await Promise.all(open.map((s) => s.end().catch(() => undefined)));
      await sleep(2000);
      seen.get(t.name)!.before.push(before);
      seen.get(t.name)!.idle.push(idle);
      line.push(
        `${t.name} ${idle.rss.toFixed(1)} MB (${(((idle.rss - before.rss) * 1024) / sessions).toFixed(1)} KB/session)`,
      );
    }
    console.log(`  idle round ${round + 1}: ${line.join(', ')}`);
  }
  const cell = (s: Spread) => formatSpread(s, 1, 7).padStart(22);
  const row = (ms: Memory[]) => FIELDS.map((f) => cell(spread(ms.map((m) => m[f])))).join('');
  console.log(
    `idle sessions: process.memoryUsage() (MB), ${SETTLE_MS / 1000} s after opening them, median (min–max) of ${rounds}`,
  );
  console.log(`  ${''.padEnd(28)}${FIELDS.map((f) => f.padStart(22)).join('')}`);
  for (const t of targets) {
    const { before, idle } = seen.get(t.name)!;
    console.log(`  ${`${t.name}, at start`.padEnd(28)}${row([t.atStart])}`);
    console.log(`  ${`${t.name}, 0 sessions`.padEnd(28)}${row(before)}`);
    console.log(`  ${`${t.name}, ${sessions} sessions`.padEnd(28)}${row(idle)}`);
  }
  console.log('  per idle session (KB)');
  for (const t of targets) {
    const { before, idle } = seen.get(t.name)!;
    const kb = (f: keyof Memory) => spread(idle.map((m, i) => ((m[f] - before[i]![f]) * 1024) / sessions));
    console.log(`  ${t.name.padEnd(28)}${FIELDS.map((f) => cell(kb(f))).join('')}`);
  }
  return targets.map((t) => ({ name: t.name, sessions, rss: seen.get(t.name)!.idle.map((m) => m.rss) }));
}
