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
  openIdleSessions,
  run,
  startAgent,
  startPgbouncer,
  startPipe,
  waitPort,
} from './postgres-env.js';
import { type IdleTarget, measureIdle, memoryOf } from './idle-memory.js';
import { ROUNDS, type Run, type Target, alternate, of, printRows, ratios } from './pgbench-runs.js';
import { cliOf, stopProcesses } from './proxy-process.js';
import { type Spread, formatSpread, spread } from './stats.js';

const DURATION = Number(process.env.BENCH_DURATION ?? 20);
/** 0 skips the connect-latency part. */
const CONNECT_DURATION = Number(process.env.BENCH_CONNECT_DURATION ?? 10);
/** 0 skips the idle-memory part. */
const IDLE_SESSIONS = Number(process.env.BENCH_IDLE_SESSIONS ?? 1000);
/**
 * pgbench's query modes (-M), each measured in turn: simple, extended (Parse/Bind/Execute per query,
 * as node-postgres with parameters) or prepared (Bind/Execute of a named statement, as JDBC or pgx).
 */
const MODES = (process.env.BENCH_PG_MODES ?? 'simple').split(/[\s,]+/).filter(Boolean);
/** pgbench's built-in script: select-only (-S, one SELECT by key), or e.g. tpcb-like (seven statements). */
const SCRIPT = process.env.BENCH_PG_SCRIPT ?? 'select-only';
/** The targets measured (space-separated; the agent always is, and agent-before with BENCH_AGENT_BEFORE). */
const TARGETS = process.env.BENCH_TARGETS?.split(/\s+/).filter(Boolean);
/** The worker line: the agent with this many worker processes against one (0 skips it). */
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);

/** BENCH_AGENT_VARIANTS as [name, dist] pairs. */
function variants(): [string, string][] {
  const words = (process.env.BENCH_AGENT_VARIANTS ?? '').split(/\s+/).filter(Boolean);
  return words.map((w) => {
    const at = w.indexOf('=');
    if (at <= 0) throw new Error(`BENCH_AGENT_VARIANTS: expected name=<dist>, got ${w}`);
    return [w.slice(0, at), w.slice(at + 1)];
  });
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
        before: true,
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
  // BENCH_AGENT_VARIANTS="name=<dist> ...": more builds' agents in the same rounds (e.g. an ablation).
  for (const [name, dist] of variants()) {
    const variant = await startAgent(dir, { ...agentOptions, name, cli: cliOf(dist) });
    cleanups.push(() => stopProcesses([variant.child]));
    await waitPort(variant.port, viaCert(variant.port));
    extra.push({ name, conninfo: viaCert(variant.port), pid: variant.child.pid! });
  }

  const select = (mode: string) => ['-b', SCRIPT, '-M', mode, '-c', '8', '-j', '2', '-T', String(DURATION)];
  // BENCH_TARGETS leaves targets out (the agent and agent-before always run).
  const all: Target[] = [targets.agent, ...extra, targets.pipe, targets.bouncer, targets.direct];
  const order = all.filter(
    (t) => t === targets.agent || extra.includes(t) || !TARGETS || TARGETS.includes(t.name),
  );
  const has = (name: string) => order.some((t) => t.name === name);
  const proxies = order.filter((t) => t.pid);
  const cpu = (r: Run) => r.cpuUs;
  const tps = (r: Run) => r.tps;
  const checks: [string, Spread, string, (v: number) => boolean][] = [];
  const floor: [string, Spread][] = [];
  // BENCH_DURATION=0 skips the throughput and worker parts (e.g. to measure idle memory alone).
  if (DURATION > 0) {
    for (const mode of MODES) {
      console.log(
        `pgbench -b ${SCRIPT} -M ${mode} -c 8 -j 2 -T ${DURATION}, ${ROUNDS} rounds of ${order.map((t) => t.name).join(', ')} ` +
          `(TLS everywhere; ${os.cpus().length} CPUs, load ${os.loadavg()[0]!.toFixed(1)})`,
      );
      const s = await alternate(order, select(mode));
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
      const ratio = (a: string, b: string, what: string, figure: (r: Run) => number): [string, Spread] => [
        `${a} / ${b} ${what} (-M ${mode})`,
        ratios(s, a, b, figure),
      ];
      // CPU is to stay below its bound, throughput above.
      const check = (b: string, what: string, figure: (r: Run) => number, bound: number) => {
        const [target, ok] =
          figure === cpu
            ? [`<= ${bound}`, (v: number) => v <= bound]
            : [`>= ${bound}`, (v: number) => v >= bound];
        if (has(b)) checks.push([...ratio('agent', b, what, figure), target, ok]);
      };
      check('node-pipe', 'CPU per transaction', cpu, 1.15);
      check('node-pipe', 'TPS', tps, 0.9);
      check('direct', 'TPS', tps, 0.85);
      check('pgbouncer', 'TPS', tps, 1.0);
      if (has('node-pipe')) floor.push(ratio('agent', 'node-pipe', 'user CPU per transaction', user));
      if (has('node-pipe') && has('pgbouncer')) floor.push(ratio('node-pipe', 'pgbouncer', 'TPS', tps));
      for (const t of extra) {
        floor.push(
          ratio('agent', t.name, 'CPU per transaction', cpu),
          ratio('agent', t.name, 'user CPU per transaction', user),
          ratio('agent', t.name, 'TPS', tps),
        );
      }
    }

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
        ? await startAgent(dir, {
            ...agentOptions,
            name: bname,
            cli: cliOf(beforeDist),
            before: true,
            workers: WORKERS,
          })
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
        `workers: the agent with 1 and ${WORKERS} worker processes, pgbench -S -M ${MODES[0]}, ${ROUNDS} rounds`,
      );
      const w = await alternate(
        [targets.agent, many, ...(beforeMany ? [beforeMany] : [])],
        select(MODES[0]!),
      );
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
    const c = await alternate(order, connect);
    const ms = (r: Run) => r.connectMs;
    printRows(
      'connection time (ms), median (min–max)',
      order.map((t) => [t.name, of(c, t.name, ms), 2]),
      { pgbouncer: 'reuses server connections' },
    );
    printRows(
      'proxy CPU per connection (µs), median (min–max)',
      proxies.map((t) => [t.name, of(c, t.name, cpu), 0]),
    );
    // The pipe does both TLS handshakes (client certificate checked) and nothing else: Node's floor.
    if (has('node-pipe'))
      floor.push(['agent / node-pipe CPU per connection', ratios(c, 'agent', 'node-pipe', cpu)]);
    if (has('pgbouncer'))
      floor.push(['agent / pgbouncer connections per second', ratios(c, 'agent', 'pgbouncer', tps)]);
    for (const t of extra) {
      floor.push([`agent / ${t.name} CPU per connection`, ratios(c, 'agent', t.name, cpu)]);
    }
    if (has('direct')) {
      const added = spread(c.get('agent')!.map((r, i) => r.connectMs - c.get('direct')![i]!.connectMs));
      checks.push(['added connect latency (ms)', added, '<= 3', (v) => v <= 3]);
    }
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
    console.log(`  ${label.padEnd(56)} ${formatSpread(value, 2)}   target ${target.padEnd(7)} ${verdict}`);
  }
  // Node's own floor, for reading the misses: a proxy that does nothing but TLS on both hops.
  for (const [label, value] of floor) console.log(`  ${label.padEnd(56)} ${formatSpread(value, 2)}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
