// The servers bench/redis.sh measures: one real Redis 7 (TLS and plaintext ports) and two agents in
// front of it — one with TLS to the backend (the production setting) and one plaintext to the backend
// (the same backend hop nutcracker has) — plus a bare Node TLS→TLS byte pipe in its own process, the
// floor any Node proxy with both hops encrypted starts from. Prints `export NAME=value` lines, then `# ready`, and
// runs until SIGTERM/SIGINT or stdin closes.
import { rm } from 'node:fs/promises';
import { createLogger } from '../src/log.js';
import { type TestAgent, startTestAgent } from '../test/support/agent.js';
import { startWorkersAgent } from '../test/support/agent-workers.js';
import { REDIS_USERS, redisDatabaseDocs, startRedis } from '../test/support/redis.js';
import { serveUntilStopped } from '../test/support/serve-until-stopped.js';
import { announceEnv, benchPolicyDocs, createBenchPki, startRedisPipe } from './redis-bench-setup.js';

const redis = await startRedis();
const pki = await createBenchPki('drawbridge-redis-bench-');

function docs(backendTls: boolean): object[] {
  return [
    ...redisDatabaseDocs({
      name: 'bench',
      uri: backendTls ? `rediss://127.0.0.1:${redis.tlsPort}` : `redis://127.0.0.1:${redis.plainPort}`,
      labels: { env: 'bench' },
      ...(backendTls ? { caPem: redis.ca.certPem } : {}),
      auth: 'password',
      login: { default: REDIS_USERS.default.password },
    }),
    ...benchPolicyDocs(),
  ];
}

const { tls } = pki;
const log = createLogger('bench-agent', 'warn');
const agents: TestAgent[] = [
  await startTestAgent({ database: 'bench', docs: docs(true), tls, log }),
  await startTestAgent({ database: 'bench', docs: docs(false), tls, log }),
];

// The worker line: the production agent again, as the CLI runs it with BENCH_WORKERS (2) processes.
const workers = Number(process.env.BENCH_WORKERS ?? 2);
const multi =
  workers > 1 ? await startWorkersAgent({ database: 'bench', docs: docs(true), tls, workers }) : undefined;

// The calibration pipe (bench/redis-tls-pipe.ts), in its own process: no parsing, no rules, no audit.
const pipe = await startRedisPipe(pki, redis);

announceEnv(pki, {
  PIPE_PORT: pipe.port,
  PIPE_PID: pipe.child.pid!,
  REDIS_TLS_PORT: redis.tlsPort,
  REDIS_PLAIN_PORT: redis.plainPort,
  REDIS_CA: redis.caFile,
  REDIS_PASSWORD: REDIS_USERS.default.password,
  AGENT_PORT: agents[0]!.port,
  AGENT_PLAIN_BACKEND_PORT: agents[1]!.port,
  AGENT_AUDIT: agents[0]!.auditPath,
  ...(multi
    ? {
        AGENT_WORKERS: workers,
        AGENT_WORKERS_PORT: multi.port,
        // Its CPU is the primary's and the workers'.
        AGENT_WORKERS_PIDS: `'${[multi.child.pid!, ...(await multi.workerPids())].join(' ')}'`,
      }
    : {}),
});

serveUntilStopped(
  async () => {
    pipe.child.kill();
    await multi?.stop();
    for (const a of agents) await a.stop(0);
    await redis.stop();
    await rm(pki.dir, { recursive: true, force: true });
  },
  { untilStdinEnds: true },
);
