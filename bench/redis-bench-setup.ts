// What the Redis bench environments (bench/redis-bench-env.ts, bench/redis-cluster-env.ts) share: the
// PKI the agent serves with and redis-benchmark presents, the policy the agent evaluates, and the
// `export NAME=value` / `# ready` lines the bench scripts source; and the bare Node pipe they read it against.
import { mkdtemp, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type KeyPairPem, createCA, issueCertificate } from '../src/pki/ca.js';
import {
  type Person,
  type RedisServer,
  accessRole,
  databaseUser,
  issuePeople,
} from '../test/support/redis.js';
import {
  type AgentProcessOptions,
  type AuditTo,
  type ProxyProcess,
  cliOf,
  startAgentProcess,
  startPipeProcess,
} from './proxy-process.js';

export interface BenchPki {
  /** Temporary directory holding the files below; the caller removes it. */
  dir: string;
  /** The agent's serving certificate (127.0.0.1). */
  serving: KeyPairPem;
  /** The agent's listener TLS: serving certificate, client certificates checked against `ca`. */
  tls: { certPem: string; keyPem: string; clientCaPem: string };
  /** The client certificate redis-benchmark presents to the agent. */
  client: Person;
  caFile: string;
}

export async function createBenchPki(dirPrefix: string): Promise<BenchPki> {
  const dir = await mkdtemp(path.join(os.tmpdir(), dirPrefix));
  const ca = await createCA({ commonName: 'drawbridge bench CA' });
  const serving = await issueCertificate(ca, {
    commonName: 'bench agent',
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  const { bench } = await issuePeople(ca, dir, ['bench']);
  const caFile = path.join(dir, 'ca.crt');
  await writeFile(caFile, ca.certPem);
  const tls = { certPem: serving.certPem, keyPem: serving.keyPem, clientCaPem: ca.certPem };
  return { dir, serving, tls, client: bench, caFile };
}

/**
 * The bench person may use the `default` database user, with a deny rule the hot path evaluates on
 * every command, as in a real policy.
 */
export function benchPolicyDocs(): object[] {
  return [
    accessRole(
      'bench',
      { databaseLabels: { env: '*' }, databaseUsers: ['default'] },
      { redisCommands: ['shutdown'] },
    ),
    databaseUser('bench', ['bench']),
  ];
}

/** Prints `export NAME=value` for the servers and the client PKI, then `# ready`. */
export function announceEnv(pki: BenchPki, servers: Record<string, string | number>): void {
  const out = {
    ...servers,
    CLIENT_CA: pki.caFile,
    CLIENT_CERT: pki.client.certFile,
    CLIENT_KEY: pki.client.keyFile,
  };
  for (const [k, v] of Object.entries(out)) process.stdout.write(`export ${k}=${v}\n`);
  process.stdout.write('# ready\n');
}

/** The bare Node TLS pipe (bench/redis-tls-pipe.ts) in front of `redis`, in its own process, once it listens. */
export async function startRedisPipe(pki: BenchPki, redis: RedisServer): Promise<ProxyProcess> {
  const cert = path.join(pki.dir, 'pipe.crt');
  const key = path.join(pki.dir, 'pipe.key');
  await writeFile(cert, pki.serving.certPem);
  await writeFile(key, pki.serving.keyPem, { mode: 0o600 });
  const args = [String(redis.tlsPort), cert, key, redis.caFile, pki.caFile];
  return startPipeProcess('node-tls-pipe', 'redis-tls-pipe.js', args);
}

/**
 * The agent rows both Redis benches have, each agent in its own process: `agent` (the production
 * setting), `agent-resp3` (the same, for the redis-benchmark -3 runs: no row's runs leave their garbage
 * or closing sessions in another row's process), the worker line (the agent with BENCH_WORKERS (2)
 * processes; 1 skips it) and, with BENCH_AGENT_BEFORE=<another build's dist>, that build's agent
 * alone and with as many workers (before/after in one run); with the `export` lines naming their ports and process ids.
 */
export async function startAgents(
  common: Omit<AgentProcessOptions, 'name' | 'cli' | 'workers'>,
): Promise<{ agents: ProxyProcess[]; exports: Record<string, number>; variants: string }> {
  const agents: ProxyProcess[] = [];
  const exports: Record<string, number> = {};
  const variants: string[] = [];
  const start = async (prefix: string, o: Partial<AgentProcessOptions> & { name: string }) => {
    const agent = await startAgentProcess({ ...common, ...o });
    agents.push(agent);
    Object.assign(exports, { [`${prefix}_PORT`]: agent.port, [`${prefix}_PID`]: agent.child.pid! });
  };
  await start('AGENT', { name: 'agent' });
  await start('AGENT_RESP3', { name: 'agent-resp3' });
  const workers = Number(process.env.BENCH_WORKERS ?? 2);
  if (workers > 1) {
    await start('AGENT_WORKERS', { name: `agent-${workers}w`, workers });
    exports.AGENT_WORKERS = workers;
  }
  const beforeDist = process.env.BENCH_AGENT_BEFORE;
  if (beforeDist) await start('AGENT_BEFORE', { name: 'agent-before', cli: cliOf(beforeDist), before: true });
  if (beforeDist && workers > 1) {
    await start('AGENT_BEFORE_WORKERS', {
      name: `agent-before-${workers}w`,
      cli: cliOf(beforeDist),
      before: true,
      workers,
    });
  }
  // BENCH_AGENT_VARIANTS="NAME=DIST[:AUDIT] ...": more builds' agents (or this one's, DIST "."), each
  // alone in its process and in the same rounds as row NAME, AUDIT file (default), stdout or shm (a
  // file on tmpfs): e.g. temporary builds with one part removed each, to see what each part costs.
  for (const variant of (process.env.BENCH_AGENT_VARIANTS ?? '').split(/\s+/).filter(Boolean)) {
    const m = /^([a-z0-9-]+)=([^:]+)(?::(file|stdout|shm))?$/.exec(variant);
    if (!m) throw new Error(`BENCH_AGENT_VARIANTS: "${variant}" is not NAME=DIST[:file|stdout|shm]`);
    const [, name, dist, auditTo] = m;
    const cli = dist === '.' ? cliOf() : cliOf(dist);
    const agent = await startAgentProcess({ ...common, name: name!, cli, auditTo: auditTo as AuditTo });
    agents.push(agent);
    variants.push(`${name}:${agent.port}:${agent.child.pid!}`);
  }
  return { agents, exports, variants: variants.join(',') };
}
