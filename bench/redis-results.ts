// The summary bench/redis.sh and bench/redis-cluster.sh print (via print_results in bench/lib.sh): reads
// the runs on stdin ("target P test round ops/s p50_ms p99_ms user_us sys_us", CPU "-" for targets
// without a proxy) and prints, per -P and test, the proxy CPU per request first (other load on a
// shared machine barely moves it, its user part least), then throughput and p99, each as median
// (min–max) over the rounds; then the ratios of runs in the same round against the targets.
// Usage: node dist/bench/redis-results.js standalone|cluster ROUNDS <results
import { readFileSync } from 'node:fs';
import { type Spread, formatSpread, spread } from './stats.js';

interface Run {
  ops: number;
  p50: number;
  p99: number;
  /** Proxy CPU per request (µs): user space, and user + system; NaN without a proxy. */
  user: number;
  cpu: number;
}

const [mode = 'standalone', rounds = '?'] = process.argv.slice(2);
/** Runs by "target P TEST", in round order; targets in the order they first ran. */
const runs = new Map<string, Run[]>();
const targets: string[] = [];
for (const line of readFileSync(0, 'utf8').split('\n')) {
  const [target, p, test, , ops, p50, p99, user, sys] = line.trim().split(/\s+/);
  if (!target || !sys) continue;
  if (!targets.includes(target)) targets.push(target);
  const key = `${target} ${p} ${test}`;
  const u = Number(user);
  const run = { ops: Number(ops), p50: Number(p50), p99: Number(p99), user: u, cpu: u + Number(sys) };
  runs.set(key, [...(runs.get(key) ?? []), run]);
}

const CASES = ['1 SET', '1 GET', '16 SET', '16 GET'];
const of = (key: string, figure: (r: Run) => number): Spread => spread((runs.get(key) ?? []).map(figure));
const cpu = (r: Run) => r.cpu;
const user = (r: Run) => r.user;
const ops = (r: Run) => r.ops;
const p99 = (r: Run) => r.p99;

const width = Math.max(...targets.map((t) => t.length), 6);
console.log(`per request, median (min–max) of ${rounds} rounds`);
console.log(
  `${'-P test'.padEnd(8)} ${'target'.padEnd(width)} ${'proxy CPU µs'.padEnd(22)} ${'user µs'.padEnd(22)} ` +
    `${'ops/s'.padEnd(26)} p99 ms`,
);
for (const c of CASES) {
  for (const t of targets) {
    const key = `${t} ${c}`;
    if (!runs.has(key)) continue;
    const proxied = !Number.isNaN(of(key, cpu).median);
    const cell = (s: Spread, digits: number, w: number) =>
      (proxied ? formatSpread(s, digits, 6) : '-').padEnd(w);
    console.log(
      `${`-P${c}`.padEnd(8)} ${t.padEnd(width)} ${cell(of(key, cpu), 1, 22)} ${cell(of(key, user), 1, 22)} ` +
        `${formatSpread(of(key, ops), 0, 7).padEnd(26)} ${formatSpread(of(key, p99), 2, 5)}`,
    );
  }
}

/** Per-round ratios of `figure` of target `a` over target `b` in one case; undefined if either is missing. */
function ratio(c: string, a: string, b: string, figure: (r: Run) => number): Spread | undefined {
  const as = runs.get(`${a} ${c}`);
  const bs = runs.get(`${b} ${c}`);
  if (!as || !bs) return undefined;
  const values: number[] = [];
  for (let i = 0; i < Math.min(as.length, bs.length); i++) values.push(figure(as[i]!) / figure(bs[i]!));
  return spread(values);
}

interface Check {
  label: string;
  a: string;
  b: string;
  figure: (r: Run) => number;
  /** A target the median must meet: `<= 1.15` or `>= 0.9`. */
  target?: string;
}

const STANDALONE: Check[] = [
  {
    label: 'CPU/request agent / node-tls-pipe',
    a: 'agent',
    b: 'node-tls-pipe',
    figure: cpu,
    target: '<= 1.15',
  },
  { label: 'user CPU agent / node-tls-pipe', a: 'agent', b: 'node-tls-pipe', figure: user },
  { label: 'ops/s agent / node-tls-pipe', a: 'agent', b: 'node-tls-pipe', figure: ops, target: '>= 0.9' },
  { label: 'ops/s agent / direct-tls', a: 'agent', b: 'direct-tls', figure: ops, target: '>= 0.85' },
  { label: 'ops/s agent / nutcracker', a: 'agent', b: 'nutcracker', figure: ops, target: '>= 1.0' },
  { label: 'ops/s agent / direct-plain', a: 'agent', b: 'direct-plain', figure: ops },
  { label: 'p99 agent / nutcracker', a: 'agent', b: 'nutcracker', figure: p99, target: '<= 1.2' },
  { label: 'ops/s agent-plainbe / nutcracker', a: 'agent-plainbe', b: 'nutcracker', figure: ops },
  { label: 'ops/s agent-resp3 / direct-tls-resp3', a: 'agent-resp3', b: 'direct-tls-resp3', figure: ops },
  { label: 'ops/s agent-resp3 / agent', a: 'agent-resp3', b: 'agent', figure: ops },
];
const CLUSTER: Check[] = [
  { label: 'ops/s agent / direct --cluster', a: 'agent', b: 'direct', figure: ops, target: '>= 0.7' },
  {
    label: 'ops/s agent-resp3 / direct-resp3',
    a: 'agent-resp3',
    b: 'direct-resp3',
    figure: ops,
    target: '>= 0.7',
  },
  { label: 'ops/s agent-resp3 / agent', a: 'agent-resp3', b: 'agent', figure: ops },
];
// The worker line (BENCH_WORKERS, both modes): the agent with N processes against the one-process
// agent, and (cluster) against direct.
for (const w of targets.filter((t) => /^agent-\d+w$/.test(t))) {
  const workerChecks: Check[] = [
    { label: `CPU/request ${w} / agent`, a: w, b: 'agent', figure: cpu },
    { label: `ops/s ${w} / agent`, a: w, b: 'agent', figure: ops },
  ];
  STANDALONE.push(...workerChecks);
  CLUSTER.push(...workerChecks, { label: `ops/s ${w} / direct --cluster`, a: w, b: 'direct', figure: ops });
}
// BENCH_AGENT_BEFORE (both modes): this build's agent against another build's, in the same rounds.
if (targets.includes('agent-before')) {
  for (const checks of [STANDALONE, CLUSTER]) {
    checks.push(
      { label: 'CPU/request agent / agent-before', a: 'agent', b: 'agent-before', figure: cpu },
      { label: 'user CPU agent / agent-before', a: 'agent', b: 'agent-before', figure: user },
      { label: 'ops/s agent / agent-before', a: 'agent', b: 'agent-before', figure: ops },
      { label: 'p99 agent / agent-before', a: 'agent', b: 'agent-before', figure: p99 },
    );
  }
}
// And with workers: agent-Nw against agent-before-Nw.
for (const b of targets.filter((t) => /^agent-before-\d+w$/.test(t))) {
  const w = b.replace('-before', '');
  for (const checks of [STANDALONE, CLUSTER]) {
    checks.push(
      { label: `CPU/request ${w} / ${b}`, a: w, b, figure: cpu },
      { label: `ops/s ${w} / ${b}`, a: w, b, figure: ops },
    );
  }
}

// BENCH_AGENT_VARIANTS' rows (any other agent row): against the agent and the pipe, in the same rounds.
const NAMED =
  /^(agent|agent-plainbe|agent-resp3|agent-before|agent(-before)?-\d+w|node-tls-pipe|direct.*|nutcracker)$/;
for (const v of targets.filter((t) => !NAMED.test(t))) {
  for (const checks of [STANDALONE, CLUSTER]) {
    checks.push(
      { label: `CPU/request ${v} / agent`, a: v, b: 'agent', figure: cpu },
      { label: `CPU/request ${v} / node-tls-pipe`, a: v, b: 'node-tls-pipe', figure: cpu },
    );
  }
}

function met(value: number, target: string): boolean {
  const limit = Number(target.slice(3));
  return target.startsWith('<=') ? value <= limit : value >= limit;
}

console.log(`\nratios of runs in the same round, median (min–max)`);
for (const c of CASES) {
  for (const check of mode === 'cluster' ? CLUSTER : STANDALONE) {
    // The p99 target is -P1's (a pipeline's latency is the batch's).
    const target = check.figure === p99 && c.startsWith('16') ? undefined : check.target;
    const r = ratio(c, check.a, check.b, check.figure);
    if (!r) continue;
    const verdict =
      target === undefined ? '' : `   target ${target.padEnd(8)} ${met(r.median, target) ? 'met' : 'MISSED'}`;
    console.log(`${`-P${c}`.padEnd(8)} ${check.label.padEnd(38)} ${formatSpread(r, 2, 5)}${verdict}`);
  }
}
