// What a standalone agent (`drawbridge agent --config`, a PostgreSQL Database with password auth) holds
// at start, process by process, after a full GC: RSS, PSS (the pod's share: workers share the node
// binary's pages), V8 heap used, and how many modules each process loaded; with BENCH_WORKERS=1 the
// agent alone, else its primary and each worker. BENCH_AGENT_BEFORE=<another build's dist> runs that
// build in the same rounds, alternating. BENCH_MODULES=1 also prints the modules of the last round's
// processes (this build's), grouped by package. Run after `npx tsc -p tsconfig.build.json`:
//   node dist/bench/start-memory.js   (BENCH_WORKERS=1, BENCH_ROUNDS=8; BENCH_SETTLE_MS=2000: how long after
//   start, V8 gives back more of its start-up memory once idle ~10 s)
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCA, issueCertificate } from '../src/pki/ca.js';
import { cliOf, startAgentProcess, stopProcesses } from './proxy-process.js';
import { probeReport } from './idle-memory.js';
import { formatSpread, spread } from './stats.js';

const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
/** Start-up done (every worker listening), then a moment for anything it left scheduled. */
const SETTLE_MS = Number(process.env.BENCH_SETTLE_MS ?? 2_000);

interface Usage {
  rss: number;
  pss: number;
  heapUsed: number;
  modules: number;
}

const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-start-memory-'));
process.env.BENCH_MEMORY_GC = '1';
try {
  const ca = await createCA({ commonName: 'bench CA' });
  const serving = await issueCertificate(ca, {
    commonName: 'agent',
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  const tls = { certPem: serving.certPem, keyPem: serving.keyPem, clientCaPem: ca.certPem };
  const docs = [
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'orders' },
      spec: {
        protocol: 'postgres',
        uri: 'postgres://127.0.0.1:5432',
        auth: { type: 'password', secretRef: { name: 'pg-passwords' } },
      },
    },
    { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'pg-passwords' }, stringData: { alice: 'pw' } },
  ];
  const builds: [string, string][] = [['agent', cliOf()]];
  if (process.env.BENCH_AGENT_BEFORE)
    builds.push(['agent-before', cliOf(path.resolve(process.env.BENCH_AGENT_BEFORE))]);
  const rows = new Map<string, Usage[]>();
  const add = (key: string, u: Usage) => rows.set(key, [...(rows.get(key) ?? []), u]);
  let lastModules: string[][] = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, cli] of builds) {
      const agent = await startAgentProcess({
        name: `${name}-${round}`,
        dir,
        cli,
        before: name === 'agent-before',
        workers: WORKERS,
        database: 'orders',
        docs,
        tls,
      });
      try {
        await sleep(SETTLE_MS);
        const pids = [agent.child.pid!, ...(WORKERS > 1 ? await childrenOf(agent.child.pid!) : [])];
        const measured = await Promise.all(pids.map(usageOf));
        const role = (i: number) => (i > 0 ? `worker ${i}` : WORKERS > 1 ? 'primary' : 'process');
        measured.forEach(([u], i) => add(`${name} ${role(i)}`, u));
        const sum = (f: keyof Usage) => measured.reduce((a, [u]) => a + u[f], 0);
        if (WORKERS > 1)
          add(`${name} all`, {
            rss: sum('rss'),
            pss: sum('pss'),
            heapUsed: sum('heapUsed'),
            modules: sum('modules'),
          });
        if (name === 'agent') lastModules = measured.map(([, m]) => m);
      } finally {
        await stopProcesses([agent.child]);
      }
    }
  }
  const fields = ['rss', 'pss', 'heapUsed', 'modules'] as const;
  console.log(
    `standalone PostgreSQL agent, --workers ${WORKERS}, after a GC ${SETTLE_MS / 1000} s after start (MB; ${ROUNDS} rounds)`,
  );
  console.log(`  ${''.padEnd(22)}${fields.map((f) => f.padEnd(24)).join('')}`);
  for (const [key, values] of rows) {
    const cols = fields.map((f) =>
      formatSpread(spread(values.map((v) => v[f])), f === 'modules' ? 0 : 1, 6).padEnd(24),
    );
    console.log(`  ${key.padEnd(22)}${cols.join('')}`);
  }
  if (process.env.BENCH_MODULES === '1') {
    lastModules.forEach((mods, i) => {
      const byPackage = new Map<string, number>();
      for (const url of mods) {
        const m = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
        const key = m
          ? m[1]!
          : url.startsWith('node:')
            ? 'node:'
            : url.replace(/^.*\/dist\//, 'dist/').replace(/\/[^/]+$/, '/');
        byPackage.set(key, (byPackage.get(key) ?? 0) + 1);
      }
      console.log(`process ${i}: ${mods.length} modules`);
      for (const [k, n] of [...byPackage].sort((a, b) => b[1] - a[1]))
        console.log(`  ${String(n).padStart(4)} ${k}`);
      for (const u of mods)
        if (!u.includes('node_modules')) console.log('     ', u.replace(/.*\/dist\//, ''));
    });
  }
} finally {
  await rm(dir, { recursive: true, force: true });
}

/** The process's usage after a GC (bench/memory-probe.ts, BENCH_MEMORY_GC) and the modules it loaded. */
async function usageOf(pid: number): Promise<[Usage, string[]]> {
  const { heapUsed, modules = [] } = await probeReport(pid);
  const smaps = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (f: string) => Number(new RegExp(`^${f}:\\s+(\\d+) kB`, 'm').exec(smaps)?.[1] ?? NaN) / 1024;
  return [{ rss: kb('Rss'), pss: kb('Pss'), heapUsed: heapUsed / 2 ** 20, modules: modules.length }, modules];
}

async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.split(' ').filter(Boolean).map(Number);
}
