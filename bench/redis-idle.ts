// `bench/redis.sh`'s idle-memory part: the agent (the real CLI, in its own process, TLS to the backend as
// in production) and the bare Node TLS pipe (bench/redis-tls-pipe.ts) each with BENCH_IDLE_SESSIONS
// (1000) idle Redis sessions, and where the bytes are (bench/idle-memory.ts). Each session is a TLS
// connection that has had its PING answered, so the agent holds its backend connection too.
// BENCH_AGENT_BEFORE=<another build's dist> adds that build's agent (before/after in one run).
import type { ChildProcess } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';
import { type TLSSocket, connect } from 'node:tls';
import { REDIS_USERS, redisDatabaseDocs, startRedis } from '../test/support/redis.js';
import { type IdleTarget, measureIdle, memoryOf } from './idle-memory.js';
import { cliOf, startAgentProcess, stopProcesses } from './proxy-process.js';
import { benchPolicyDocs, createBenchPki, startRedisPipe } from './redis-bench-setup.js';

const SESSIONS = Number(process.env.BENCH_IDLE_SESSIONS ?? 1000);
const PING = '*1\r\n$4\r\nPING\r\n';

const redis = await startRedis();
const pki = await createBenchPki('drawbridge-redis-idle-');
const children: ChildProcess[] = [];
const tls = { ca: await readFile(pki.caFile) };
const cert = { cert: await readFile(pki.client.certFile), key: await readFile(pki.client.keyFile) };
try {
  const { password } = REDIS_USERS.default;
  const auth = `*2\r\n$4\r\nAUTH\r\n$${Buffer.byteLength(password)}\r\n${password}\r\n`;
  const targets: IdleTarget[] = [];
  const agents: [string, string][] = [['agent', cliOf()]];
  const before = process.env.BENCH_AGENT_BEFORE;
  if (before) agents.push(['agent-before', cliOf(before)]);
  const docs = redisDatabaseDocs({
    name: 'bench',
    uri: `rediss://127.0.0.1:${redis.tlsPort}`,
    labels: { env: 'bench' },
    caPem: redis.ca.certPem,
    auth: 'password',
    login: { default: REDIS_USERS.default.password },
  });
  const limits = { maxConnections: SESSIONS + 10, maxConnectionsPerIdentity: SESSIONS + 10 };
  for (const [name, cli] of agents) {
    const common = { database: 'bench', tls: pki.tls, limits, docs: [...docs, ...benchPolicyDocs()] };
    const agent = await startAgentProcess({
      ...common,
      name,
      cli,
      before: name === 'agent-before',
      dir: pki.dir,
    });
    children.push(agent.child);
    targets.push(await target(name, agent, (n) => openSessions(n, agent.port, { ...tls, ...cert }, PING)));
  }
  const pipe = await startRedisPipe(pki, redis);
  children.push(pipe.child);
  targets.push(await target('node-pipe', pipe, (n) => openSessions(n, pipe.port, tls, auth + PING)));
  await measureIdle(targets, SESSIONS, Number(process.env.BENCH_ROUNDS ?? 3));
} finally {
  await stopProcesses(children);
  await redis.stop();
  await rm(pki.dir, { recursive: true, force: true });
}

async function target(
  name: string,
  { child }: { child: ChildProcess },
  open: IdleTarget['open'],
): Promise<IdleTarget> {
  // One session first: the process has loaded what a session needs, as after a bench run.
  const [first] = await open(1);
  await first!.end();
  return { name, pid: child.pid!, atStart: await memoryOf(child.pid!), open };
}

/** `n` TLS connections to `port`, 50 at a time, each once `hello` has been answered (+PONG last). */
async function openSessions(
  n: number,
  port: number,
  options: object,
  hello: string,
): Promise<{ end(): Promise<void> }[]> {
  const sessions: { end(): Promise<void> }[] = [];
  for (let i = 0; i < n; i += 50) {
    const batch = Array.from({ length: Math.min(50, n - i) }, () => session(port, options, hello));
    sessions.push(...(await Promise.all(batch)));
  }
  return sessions;
}

function session(port: number, options: object, hello: string): Promise<{ end(): Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, ...options }, () => socket.write(hello));
    let reply = '';
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString();
      if (!reply.endsWith('+PONG\r\n')) return;
      const end = () => new Promise<void>((done) => socket.once('close', () => done()).end());
      resolve({ end });
    });
  });
}
