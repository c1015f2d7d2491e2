// What an in-cluster agent holds at start, process by process: `drawbridge agent --database NS/NAME
// --workers N` against a real kube-apiserver (test/k8s), idle: its primary's and each worker's RSS,
// PSS and anonymous memory. BENCH_AGENT_BEFORE=<another build's dist> runs that
// build's agent in the same rounds, alternating. The agents read a service account as in a pod
// (KUBERNETES_SERVICE_HOST/PORT, token, ca.crt); BENCH_KUBECONFIG=agent-before (builds, comma-separated)
// gives those --kubeconfig instead (builds from before they read the service account themselves).
// Run after `npx tsc -p tsconfig.build.json`:
//   node dist/bench/incluster-memory.js   (BENCH_WORKERS=2, BENCH_ROUNDS=3)
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createCA, issueCertificate } from '../src/pki/ca.js';
import { startControlPlane } from '../test/k8s/controlplane.js';
import { metricValue } from '../test/support/agent-workers.js';
import { freePort } from '../test/support/ports.js';
import { agentArgs } from './idle-memory.js';
import { formatSpread, spread } from './stats.js';

const NS = 'bench';

interface Memory {
  rss: number;
  pss: number;
  anon: number;
}
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Long enough for start-up garbage to be collected (V8's memory reducer runs after ~8 s idle). */
const SETTLE_MS = 12_000;
const here = path.dirname(new URL(import.meta.url).pathname);
const KUBECONFIG_BUILDS = (process.env.BENCH_KUBECONFIG ?? '').split(',');

const plane = await startControlPlane();
const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-incluster-memory-'));
try {
  await plane.kubectl(['apply', '-f', path.resolve(here, '../../crds')]);
  await plane.kubectl(['create', 'namespace', NS]);
  const docs = [
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'orders', namespace: NS },
      spec: {
        protocol: 'postgres',
        uri: 'postgres://127.0.0.1:5432',
        auth: { type: 'password', secretRef: { name: 'pg-passwords' } },
      },
    },
    {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'pg-passwords', namespace: NS },
      stringData: { alice: 'pw' },
    },
  ];
  await plane.kubectl(['apply', '-f', '-'], { input: docs.map((d) => JSON.stringify(d)).join('\n') });
  const tlsDir = path.join(dir, 'tls');
  await mkdir(tlsDir);
  const ca = await createCA({ commonName: 'bench CA' });
  const serving = await issueCertificate(ca, {
    commonName: 'agent',
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  await writeFile(path.join(tlsDir, 'tls.crt'), serving.certPem);
  await writeFile(path.join(tlsDir, 'tls.key'), serving.keyPem);
  await writeFile(path.join(tlsDir, 'ca.crt'), ca.certPem);
  // What the kubelet mounts in a pod; the agent reads it there (DRAWBRIDGE_TEST_SERVICE_ACCOUNT_DIR).
  const serviceAccount = path.join(dir, 'serviceaccount');
  await mkdir(serviceAccount);
  await plane.kubectl(['create', 'serviceaccount', 'agent', '-n', NS]);
  await plane.kubectl([
    'create',
    'clusterrolebinding',
    'agent',
    '--clusterrole=cluster-admin',
    `--serviceaccount=${NS}:agent`,
  ]);
  const token = await plane.kubectl(['create', 'token', 'agent', '-n', NS]);
  await writeFile(path.join(serviceAccount, 'token'), token.trim());
  await writeFile(path.join(serviceAccount, 'ca.crt'), plane.caPem);
  const server = new URL(plane.server);
  const inPod = {
    KUBERNETES_SERVICE_HOST: server.hostname,
    KUBERNETES_SERVICE_PORT: server.port,
    DRAWBRIDGE_TEST_SERVICE_ACCOUNT_DIR: serviceAccount,
  };

  const builds: [string, string][] = [['agent', path.resolve(here, '..')]];
  if (process.env.BENCH_AGENT_BEFORE)
    builds.push(['agent-before', path.resolve(process.env.BENCH_AGENT_BEFORE)]);
  const rows = new Map<string, Memory[]>();
  const add = (key: string, m: Memory) => rows.set(key, [...(rows.get(key) ?? []), m]);
  for (let round = 0; round < ROUNDS; round++) {
    for (const [name, dist] of builds) {
      const credentials = KUBECONFIG_BUILDS.includes(name)
        ? { args: [`--kubeconfig=${plane.kubeconfigPath}`], env: {} }
        : { args: [], env: inPod };
      const measured = await measure(
        path.join(dist, 'src/cli/drawbridge.js'),
        credentials,
        name === 'agent-before',
      );
      // One worker is the agent itself, in one process (no primary).
      const role = (i: number) => (i > 0 ? `worker ${i}` : WORKERS > 1 ? 'primary' : 'process');
      measured.forEach((m, i) => add(`${name} ${role(i)}`, m));
      const sum = (f: keyof Memory) => measured.reduce((a, m) => a + m[f], 0);
      add(`${name} pod`, { rss: sum('rss'), pss: sum('pss'), anon: sum('anon') });
    }
  }
  console.log(
    `in-cluster agent, ${WORKERS} workers, idle ${SETTLE_MS / 1000} s after start (MB, ${ROUNDS} rounds).`,
  );
  console.log(
    '  PSS splits shared pages (the node binary) among the processes: the pod holds the sum of PSS',
  );
  console.log(`  ${''.padEnd(22)}${(['rss', 'pss', 'anon'] as const).map((f) => f.padEnd(22)).join('')}`);
  for (const [key, values] of rows) {
    const cols = (['rss', 'pss', 'anon'] as const).map((f) =>
      formatSpread(spread(values.map((v) => v[f])), 1, 6).padEnd(22),
    );
    console.log(`  ${key.padEnd(22)}${cols.join('')}`);
  }
} finally {
  await plane.stop();
  await rm(dir, { recursive: true, force: true });
}

/** Starts the agent of `cli` with `credentials` (`before`: BENCH_AGENT_BEFORE's), waits until it serves and settles; the memory of its primary, then each worker. */
async function measure(
  cli: string,
  credentials: { args: string[]; env: Record<string, string> },
  before: boolean,
): Promise<Memory[]> {
  const metrics = `127.0.0.1:${await freePort()}`;
  const args = [
    `--database=${NS}/orders`,
    ...credentials.args,
    `--listen=127.0.0.1:${await freePort()}`,
    `--tls-dir=${path.join(dir, 'tls')}`,
    `--metrics=${metrics}`,
    '--audit=-',
  ];
  const child = spawn(process.execPath, agentArgs(cli, args, WORKERS, before), {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, ...credentials.env, DRAWBRIDGE_LOG_LEVEL: 'warn' },
  });
  try {
    await ready(child, metrics);
    await sleep(SETTLE_MS);
    const workers = WORKERS > 1 ? await childrenOf(child.pid!) : [];
    const pids = [child.pid!, ...workers];
    return await Promise.all(pids.map(memoryOf));
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}

/** Ready: /healthz for one process; every worker listening (drawbridge_agent_workers) for a pool. */
async function ready(child: ChildProcess, metrics: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    const path = WORKERS > 1 ? 'metrics' : 'healthz';
    const res = await fetch(`http://${metrics}/${path}`).catch(() => undefined);
    const text = res?.ok ? await res.text() : undefined;
    if (text !== undefined && (WORKERS === 1 || metricValue(text, 'drawbridge_agent_workers') === WORKERS))
      return;
    if (child.exitCode !== null) throw new Error(`the agent exited (${child.exitCode})`);
    await sleep(100);
  }
  throw new Error('the agent did not get ready in 30 s');
}

/** RSS, PSS and anonymous memory of process `pid` (MB), from /proc/PID/smaps_rollup. */
async function memoryOf(pid: number): Promise<Memory> {
  const text = await readFile(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rss: kb('Rss') / 1024, pss: kb('Pss') / 1024, anon: kb('Anonymous') / 1024 };
}

async function childrenOf(pid: number): Promise<number[]> {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.split(' ').filter(Boolean).map(Number);
}
