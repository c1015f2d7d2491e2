// The servers bench/redis.sh measures: one real Redis 7 (TLS and plaintext ports) and, each in its own
// process started the same way (bench/proxy-process.ts), the agents in front of it — the agent rows
// of both Redis benches (startAgents in bench/redis-bench-setup.ts) with TLS to the backend (the
// production setting), and one plaintext to the backend (the same backend hop nutcracker has) — and
// a bare Node TLS→TLS byte pipe, the floor any Node proxy with both hops encrypted starts from. This
// process only starts them: it runs no target. Prints `export NAME=value` lines (each target's port
// and process id, whose CPU is charged to it with its children's), then `# ready`, and runs until
// SIGTERM/SIGINT or stdin closes.
import { rm } from 'node:fs/promises';
import { REDIS_USERS, redisDatabaseDocs, startRedis } from '../test/support/redis.js';
import { serveUntilStopped } from '../test/support/serve-until-stopped.js';
import { startAgentProcess, stopProcesses } from './proxy-process.js';
import {
  announceEnv,
  benchPolicyDocs,
  createBenchPki,
  startAgents,
  startRedisPipe,
} from './redis-bench-setup.js';

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

const common = { database: 'bench', tls: pki.tls, dir: pki.dir };
const { agents, exports, variants } = await startAgents({ ...common, docs: docs(true) });
const plain = await startAgentProcess({ ...common, name: 'agent-plainbe', docs: docs(false) });
// The calibration pipe (bench/redis-tls-pipe.ts): no parsing, no rules, no audit.
const pipe = await startRedisPipe(pki, redis);

announceEnv(pki, {
  PIPE_PORT: pipe.port,
  PIPE_PID: pipe.child.pid!,
  REDIS_TLS_PORT: redis.tlsPort,
  REDIS_PLAIN_PORT: redis.plainPort,
  REDIS_CA: redis.caFile,
  REDIS_PASSWORD: REDIS_USERS.default.password,
  AGENT_PLAIN_BACKEND_PORT: plain.port,
  AGENT_PLAIN_BACKEND_PID: plain.child.pid!,
  ...exports,
  AGENT_VARIANTS: variants,
});

serveUntilStopped(
  async () => {
    await stopProcesses([pipe, plain, ...agents].map((p) => p.child));
    await redis.stop();
    await rm(pki.dir, { recursive: true, force: true });
  },
  { untilStdinEnds: true },
);
