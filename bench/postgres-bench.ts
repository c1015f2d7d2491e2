// `bench/postgres.sh`: PostgreSQL throughput and connect cost, direct vs. through the agent vs. through
// pgbouncer (session mode) vs. a bare Node TLS→TLS pipe, on the same server with the same TLS set-up:
// verify-full TLS on every hop, client certificates to the proxies, SCRAM to the server. Each
// comparison runs BENCH_ROUNDS times, the targets alternating within each round, and is reported as the
// median and spread (min–max): the proxy CPU per transaction first (other load on a shared machine
// barely moves it), then throughput and the ratios of runs in the same round. Then the agent's RSS with
// 1,000 idle sessions beside the pipe's.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createCA, issueCertificate } from '../src/pki/ca.js';
import { PG_BIN, startPostgres } from '../test/support/postgres.js';
import {
  PASSWORD,
  USER,
  cpuSeconds,
  ownCpuSeconds,
  openIdleSessions,
  run,
  startAgent,
  startPgbouncer,
  startPipe,
  waitPort,
} from './postgres-env.js';
import { type IdleTarget, measureIdle, memoryOf } from './idle-memory.js';
import { cliOf, stopProcesses } from './proxy-process.js';
import { type Spread, formatSpread, spread } from './stats.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 20);
/** 0 skips the connect-latency part. */
const CONNECT_DURATION = Number(process.env.BENCH_CONNECT_DURATION ?? 10);
/** 0 skips the idle-memory part. */
const IDLE_SESSIONS = Number(process.env.BENCH_IDLE_SESSIONS ?? 1000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** pgbench's query mode (-M): simple, extended (Parse/Bind/Execute per query) or prepared. */
const MODE = process.env.BENCH_PG_MODE ?? 'simple';
/** The worker line: the agent with this many worker processes against one (0 skips it). */
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);

/** One way to reach the server; `pid` is the proxy process charged for the CPU (none when direct). */
interface Target {
  name: string;
  conninfo: string;
  env?: object;
  pid?: number;
}

interface Run {
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
async function alternate(targets: Target[], args: string[]): Promise<Map<string, Run[]>> {
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
function ratios(runs: Map<string, Run[]>, a: string, b: string, figure: (r: Run) => number): Spread {
  const bs = runs.get(b)!;
  return spread(runs.get(a)!.map((r, i) => figure(r) / figure(bs[i]!)));
}

const of = (runs: Map<string, Run[]>, name: string, figure: (r: Run) => number): Spread =>
  spread(runs.get(name)!.map(figure));

function printRows(title: string, rows: [string, Spread, number][], note: Record<string, string> = {}): void {
  console.log(title);
  for (const [name, s, digits] of rows) {
    console.log(`  ${name.padEnd(12)} ${formatSpread(s, digits)}${note[name] ? `   ${note[name]}` : ''}`);
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-bench-pg-'));
  const cleanups: (() => Promise<unknown> | void)[] = [() => rm(dir, { recursive: true, force: true })];
  const cleanup = async () => {
    for (const c of cleanups.reverse()) await c();
  };
  process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
  try {
    await bench(dir, cleanups);
  } finally {
    await cleanup();
  }
}

async function bench(dir: string, cleanups: (() => Promise<unknown> | void)[]): Promise<void> {
  const file = (name: string) => path.join(dir, name);
  const maxSessions = IDLE_SESSIONS + 100;
  const server = await startPostgres({
    roles: [{ name: USER, password: PASSWORD }],
    databases: [USER],
    maxConnections: maxSessions,
  });
  cleanups.push(() => server.stop());

  // One CA for the agent's and pgbouncer's serving certificates and for the client certificate.
  const ca = await createCA({ commonName: 'bench CA' });
  const serving = await issueCertificate(ca, {
    commonName: 'bench proxy',
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  const client = await issueCertificate(ca, { commonName: USER, usage: 'client' });
  const files: [string, string, number][] = [
    ['ca.crt', ca.certPem, 0o644],
    ['client.crt', client.certPem, 0o644],
    ['client.key', client.keyPem, 0o600],
    ['proxy.crt', serving.certPem, 0o644],
    ['proxy.key', serving.keyPem, 0o600],
    ['pg-ca.crt', server.ca.certPem, 0o644],
  ];
  for (const [name, content, mode] of files) await writeFile(file(name), content, { mode });

  const direct = `host=127.0.0.1 port=${server.port} dbname=${USER} user=${USER} sslmode=verify-full sslrootcert=${file('pg-ca.crt')}`;
  const viaCert = (port: number) =>
    `host=127.0.0.1 port=${port} dbname=${USER} user=${USER} sslmode=verify-full sslrootcert=${file('ca.crt')} ` +
    `sslcert=${file('client.crt')} sslkey=${file('client.key')}`;
  const pwEnv = { PGPASSWORD: PASSWORD };
  await run(path.join(PG_BIN, 'pgbench'), ['-i', '-q', '-s', '10', direct], pwEnv);

  const agentOptions = {
    pgPort: server.port,
    pgCaPem: server.ca.certPem,
    clientCaPem: ca.certPem,
    serving,
    maxSessions,
  };
  const agent = await startAgent(dir, { ...agentOptions, name: 'agent' });
  cleanups.push(() => stopProcesses([agent.child]));
  // BENCH_AGENT_BEFORE=<another build's dist>: that agent runs in the same rounds, for before/after.
  const beforeDist = process.env.BENCH_AGENT_BEFORE;
  const before = beforeDist
    ? await startAgent(dir, {
        ...agentOptions,
        name: 'agent-before',
        cli: cliOf(beforeDist),
      })
    : undefined;
  if (before) {
    cleanups.push(() => stopProcesses([before.child]));
    await waitPort(before.port, viaCert(before.port));
  }
  const bouncer = await startPgbouncer(dir, server.port, maxSessions);
  cleanups.push(() => stopProcesses([bouncer]));
  await waitPort(agent.port, viaCert(agent.port));
  await waitPort(bouncer.port, viaCert(bouncer.port));
  const pipe = await startPipe(dir, server.port);
  cleanups.push(() => stopProcesses([pipe.child]));
  // The fixed cost: each proxy's memory before any session.
  const [agentAtStart, beforeAtStart, pipeAtStart] = await Promise.all(
    [agent, before, pipe].map((p) => p && memoryOf(p.child.pid!)),
  );

  const targets = {
    agent: { name: 'agent', conninfo: viaCert(agent.port), pid: agent.child.pid! },
    // The pipe passes SCRAM through; channel binding would bind to its certificate, not the server's.
    pipe: {
      name: 'node-pipe',
      conninfo: `${viaCert(pipe.port)} channel_binding=disable`,
      env: pwEnv,
      pid: pipe.child.pid!,
    },
    bouncer: { name: 'pgbouncer', conninfo: viaCert(bouncer.port), pid: bouncer.pid! },
    direct: { name: 'direct', conninfo: direct, env: pwEnv },
  } satisfies Record<string, Target>;
  /** Further agents, each read against `agent` in the same rounds. */
  const extra: Target[] = before
    ? [{ name: 'agent-before', conninfo: viaCert(before.port), pid: before.child.pid! }]
    : [];

  const select = ['-S', '-M', MODE, '-c', '8', '-j', '2', '-T', String(DURATION)];
  const order: Target[] = [targets.agent, ...extra, targets.pipe, targets.bouncer, targets.direct];
  const proxies = order.filter((t) => t.pid);
  const cpu = (r: Run) => r.cpuUs;
  const tps = (r: Run) => r.tps;
  const checks: [string, Spread, string, (v: number) => boolean][] = [];
  const floor: [string, Spread][] = [];
  // BENCH_DURATION=0 skips the throughput and worker parts (e.g. to measure idle memory alone).
  if (DURATION > 0) {
    console.log(
      `pgbench -S -M ${MODE} -c 8 -j 2 -T ${DURATION}, ${ROUNDS} rounds of ${order.map((t) => t.name).join(', ')} ` +
        `(TLS everywhere; ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)})`,
    );
    const s = await alternate(order, select);
    printRows(
      `proxy CPU per transaction (µs), median (min–max) of ${ROUNDS}`,
      proxies.map((t) => [t.name, of(s, t.name, cpu), 1]),
    );
    // The system part is mostly loopback TCP (the receiver's side too), and moves with the machine's load.
    const user = (r: Run) => r.userUs;
    printRows(
      "  of which user space (the proxy's own code and its TLS)",
      proxies.map((t) => [t.name, of(s, t.name, user), 1]),
    );
    printRows(
      'throughput (tps), median (min–max)',
      order.map((t) => [t.name, of(s, t.name, tps), 0]),
      { 'node-pipe': 'bare Node TLS pipe: the floor of a Node proxy' },
    );
    checks.push(
      [
        'agent / node-pipe CPU per transaction',
        ratios(s, 'agent', 'node-pipe', cpu),
        '<= 1.15',
        (v) => v <= 1.15,
      ],
      ['agent / node-pipe TPS', ratios(s, 'agent', 'node-pipe', tps), '>= 0.9', (v) => v >= 0.9],
      ['agent / direct TPS', ratios(s, 'agent', 'direct', tps), '>= 0.85', (v) => v >= 0.85],
      ['agent / pgbouncer TPS', ratios(s, 'agent', 'pgbouncer', tps), '>= 1.0', (v) => v >= 1.0],
    );
    floor.push(
      ['agent / node-pipe user CPU per transaction', ratios(s, 'agent', 'node-pipe', user)],
      ['node-pipe / pgbouncer TPS', ratios(s, 'node-pipe', 'pgbouncer', tps)],
      ...extra.flatMap((t): [string, Spread][] => [
        [`agent / ${t.name} CPU per transaction`, ratios(s, 'agent', t.name, cpu)],
        [`agent / ${t.name} user CPU per transaction`, ratios(s, 'agent', t.name, user)],
        [`agent / ${t.name} TPS`, ratios(s, 'agent', t.name, tps)],
      ]),
    );

    if (WORKERS > 1) {
      const name = `agent-${WORKERS}w`;
      const multi = await startAgent(dir, { ...agentOptions, name, workers: WORKERS });
      cleanups.push(() => stopProcesses([multi.child]));
      await waitPort(multi.port, viaCert(multi.port));
      // CPU counts the primary and its workers.
      const many = { name, conninfo: viaCert(multi.port), pid: multi.child.pid! };
      // BENCH_AGENT_BEFORE: that build with as many workers, in the same rounds.
      const bname = `agent-before-${WORKERS}w`;
      const beforeMulti = beforeDist
        ? await startAgent(dir, { ...agentOptions, name: bname, cli: cliOf(beforeDist), workers: WORKERS })
        : undefined;
      if (beforeMulti) {
        cleanups.push(() => stopProcesses([beforeMulti.child]));
        await waitPort(beforeMulti.port, viaCert(beforeMulti.port));
      }
      const beforeMany = beforeMulti && {
        name: bname,
        conninfo: viaCert(beforeMulti.port),
        pid: beforeMulti.child.pid!,
      };
      console.log(
        `workers: the agent with 1 and ${WORKERS} worker processes, same pgbench -S, ${ROUNDS} rounds`,
      );
      const w = await alternate([targets.agent, many, ...(beforeMany ? [beforeMany] : [])], select);
      const primary = (r: Run) => r.ownUs;
      printRows('workers: proxy CPU per transaction (µs), then throughput (tps), median (min–max)', [
        ['agent', of(w, 'agent', cpu), 1],
        [name, of(w, name, cpu), 1],
        [`${name} primary`, of(w, name, primary), 1],
        ...(beforeMany
          ? ([
              [bname, of(w, bname, cpu), 1],
              [`${bname} primary`, of(w, bname, primary), 1],
            ] satisfies [string, Spread, number][])
          : []),
        ['agent', of(w, 'agent', tps), 0],
        [name, of(w, name, tps), 0],
      ]);
      printRows('workers: ratios of the same round', [
        [`CPU/tx`, ratios(w, name, 'agent', cpu), 2],
        [`TPS`, ratios(w, name, 'agent', tps), 2],
        ...(beforeMany
          ? ([[`CPU/tx ${name} / ${bname}`, ratios(w, name, bname, cpu), 2]] satisfies [
              string,
              Spread,
              number,
            ][])
          : []),
      ]);
      await stopProcesses([multi.child, ...(beforeMulti ? [beforeMulti.child] : [])]);
    }
  }

  if (CONNECT_DURATION > 0) {
    const connect = ['-S', '-C', '-c', '1', '-j', '1', '-T', String(CONNECT_DURATION)];
    console.log(
      `pgbench -S -C -c 1 -T ${CONNECT_DURATION} (a new TLS connection per transaction), ${ROUNDS} rounds`,
    );
    const c = await alternate(
      [targets.agent, ...extra, targets.pipe, targets.bouncer, targets.direct],
      connect,
    );
    const ms = (r: Run) => r.connectMs;
    printRows(
      'connection time (ms), median (min–max)',
      [
        ['agent', of(c, 'agent', ms), 2],
        ...extra.map((t): [string, Spread, number] => [t.name, of(c, t.name, ms), 2]),
        ['node-pipe', of(c, 'node-pipe', ms), 2],
        ['pgbouncer', of(c, 'pgbouncer', ms), 2],
        ['direct', of(c, 'direct', ms), 2],
      ],
      { pgbouncer: 'reuses server connections' },
    );
    printRows('proxy CPU per connection (µs), median (min–max)', [
      ['agent', of(c, 'agent', cpu), 0],
      ...extra.map((t): [string, Spread, number] => [t.name, of(c, t.name, cpu), 0]),
      ['node-pipe', of(c, 'node-pipe', cpu), 0],
      ['pgbouncer', of(c, 'pgbouncer', cpu), 0],
    ]);
    // The pipe does both TLS handshakes (client certificate checked) and nothing else: Node's floor.
    floor.push(['agent / node-pipe CPU per connection', ratios(c, 'agent', 'node-pipe', cpu)]);
    floor.push(['agent / pgbouncer connections per second', ratios(c, 'agent', 'pgbouncer', (r) => r.tps)]);
    for (const t of extra) {
      floor.push([`agent / ${t.name} CPU per connection`, ratios(c, 'agent', t.name, cpu)]);
    }
    const added = spread(c.get('agent')!.map((r, i) => r.connectMs - c.get('direct')![i]!.connectMs));
    checks.push(['added connect latency (ms)', added, '<= 3', (v) => v <= 3]);
  }

  if (IDLE_SESSIONS > 0) {
    const open = (port: number, password?: string) => (n: number) =>
      openIdleSessions(port, files, n, password);
    const idleTargets: IdleTarget[] = [
      { name: 'agent', pid: agent.child.pid!, atStart: agentAtStart!, open: open(agent.port) },
      ...(before
        ? [{ name: 'agent-before', pid: before.child.pid!, atStart: beforeAtStart!, open: open(before.port) }]
        : []),
      // The bare Node TLS pipe: what idle TLS-to-TLS pairs cost Node itself.
      { name: 'node-pipe', pid: pipe.child.pid!, atStart: pipeAtStart!, open: open(pipe.port, PASSWORD) },
    ];
    const idle = await measureIdle(idleTargets, IDLE_SESSIONS, ROUNDS);
    const rss = (name: string): Spread => spread(idle.find((r) => r.name === name)!.rss);
    checks.push([`agent RSS, ${IDLE_SESSIONS} idle sessions (MB)`, rss('agent'), '<= 120', (v) => v <= 120]);
    if (before) floor.push([`agent-before RSS, ${IDLE_SESSIONS} idle sessions (MB)`, rss('agent-before')]);
    floor.push([`node-pipe RSS, ${IDLE_SESSIONS} idle sessions (MB)`, rss('node-pipe')]);
  }

  console.log(`summary (median (min–max) of ${ROUNDS} rounds; ratios between runs of the same round)`);
  for (const [label, value, target, ok] of checks) {
    const verdict = ok(value.median) ? 'met' : 'MISSED';
    console.log(`  ${label.padEnd(44)} ${formatSpread(value, 2)}   target ${target.padEnd(7)} ${verdict}`);
  }
  // Node's own floor, for reading the misses: a proxy that does nothing but TLS on both hops.
  for (const [label, value] of floor) console.log(`  ${label.padEnd(44)} ${formatSpread(value, 2)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
