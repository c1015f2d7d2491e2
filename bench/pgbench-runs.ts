// The pgbench runs of bench/postgres-bench.ts: one run against one target with the CPU it cost the
// proxy, rounds of runs alternating between targets, and the medians and same-round ratios read from them.
import path from 'node:path';
import { PG_BIN } from '../test/support/postgres.js';
import { cpuSeconds, ownCpuSeconds, run } from './postgres-env.js';
import { type Spread, formatSpread, spread } from './stats.js';

export const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

/** One way to reach the server; `pid` is the proxy process charged for the CPU (none when direct). */
export interface Target {
  name: string;
  conninfo: string;
  env?: object;
  pid?: number;
}

export interface Run {
  tps: number;
  connectMs: number;
  transactions: number;
  /** Proxy CPU per transaction (µs), and the user-space part of it; NaN for direct. */
  cpuUs: number;
  userUs: number;
  /** The CPU of the proxy process alone per transaction (µs): an agent's primary, without its workers. */
  ownUs: number;
}

async function pgbench(target: Target, args: string[]): Promise<Run> {
  const before = target.pid ? cpuSeconds(target.pid) : undefined;
  const ownBefore = target.pid ? ownCpuSeconds(target.pid) : undefined;
  const out = await run(path.join(PG_BIN, 'pgbench'), ['-n', ...args, target.conninfo], target.env);
  const tps = Number(/tps = ([\d.]+)/.exec(out)?.[1]);
  const connectMs = Number(/average connection time = ([\d.]+) ms/.exec(out)?.[1]);
  const transactions = Number(/number of transactions actually processed: (\d+)/.exec(out)?.[1]);
  if (!Number.isFinite(tps)) throw new Error(`unexpected pgbench output:\n${out}`);
  const after = target.pid ? cpuSeconds(target.pid) : undefined;
  const ownAfter = target.pid ? ownCpuSeconds(target.pid) : undefined;
  const perTx = (seconds: number) => (seconds * 1e6) / transactions;
  const usOf = (a = { user: NaN, system: NaN }, b = { user: NaN, system: NaN }) =>
    perTx(b.user - a.user + b.system - a.system);
  const userUs = before && after ? perTx(after.user - before.user) : NaN;
  return {
    tps,
    connectMs,
    transactions,
    cpuUs: usOf(before, after),
    userUs,
    ownUs: usOf(ownBefore, ownAfter),
  };
}

/** ROUNDS rounds, each running every target once, rotating; the runs by target name, in round order. */
export async function alternate(targets: Target[], args: string[]): Promise<Map<string, Run[]>> {
  const runs = new Map<string, Run[]>(targets.map((t) => [t.name, []]));
  for (let round = 1; round <= ROUNDS; round++) {
    const line: string[] = [];
    // Every other round starts one target further on, and every second round runs backwards: no
    // target always runs first (after the heaviest load) or right after the same one (its leftovers).
    const shift = Math.floor((round - 1) / 2) % targets.length;
    const order = [...targets.slice(shift), ...targets.slice(0, shift)];
    if (round % 2 === 0) order.reverse();
    for (const t of order) {
      const r = await pgbench(t, args);
      runs.get(t.name)!.push(r);
      const cpu = t.pid ? ` ${r.cpuUs.toFixed(1)} µs (user ${r.userUs.toFixed(1)})` : '';
      line.push(`${t.name} ${r.tps.toFixed(0)} tps${cpu}`);
    }
    console.log(`  round ${round}: ${line.join(', ')}`);
  }
  return runs;
}

/** Per-round ratios of one figure of target `a` over target `b` (runs of one round sit side by side). */
export function ratios(runs: Map<string, Run[]>, a: string, b: string, figure: (r: Run) => number): Spread {
  const bs = runs.get(b)!;
  return spread(runs.get(a)!.map((r, i) => figure(r) / figure(bs[i]!)));
}

export const of = (runs: Map<string, Run[]>, name: string, figure: (r: Run) => number): Spread =>
  spread(runs.get(name)!.map(figure));

export function printRows(
  title: string,
  rows: [string, Spread, number][],
  note: Record<string, string> = {},
): void {
  console.log(title);
  for (const [name, s, digits] of rows) {
    console.log(`  ${name.padEnd(12)} ${formatSpread(s, digits)}${note[name] ? `   ${note[name]}` : ''}`);
  }
}
