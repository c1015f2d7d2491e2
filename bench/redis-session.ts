// In-process bench of the Redis engine's own work per command, to compare builds in a minute without
// the bench lock's whole runs: RedisSession (the agent's session class) over faked client sockets (a
// Duplex stands for the TLS socket, its certificate checked), a real in-process agent (policy, rules,
// audit file) and a real Redis behind it, plaintext. With no TLS on either hop, the engine's JavaScript
// weighs more here than in bench/redis.sh. 50 sessions each send redis-benchmark -P16's pipelines of
// SET or GET and wait for their replies; CPU of the whole process per command, per round.
// Usage: node dist/bench/redis-session.js [--test SET|GET] [--rounds N] [--runs N] [DIST ...]
//   DIST: builds' dist directories (default: this one's); each runs in processes of its own,
//   alternating (with the V8 options of the build's CLI), --runs (3) each, --rounds (7) rounds of 400k
//   commands per process. Printed per build:
//   median (min–max) over the processes of their median and of their fastest round, ns per command.
import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { parseArgs } from 'node:util';
import type { AgentRuntime } from '../src/agent/engine.js';
import type { OpenRouter } from '../src/engines/redis/router.js';
import type * as SessionModule from '../src/engines/redis/session.js';
import type * as AgentSupport from '../test/support/agent.js';
import type * as RedisSupport from '../test/support/redis.js';
import type * as BenchSetup from './redis-bench-setup.js';
import { launcherOptions } from './idle-memory.js';
import { formatSpread, spread } from './stats.js';

const SESSIONS = 50;
const PIPELINE = 16;
const PER_ROUND = 400_000;
const here = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    test: { type: 'string', default: 'SET' },
    rounds: { type: 'string', default: '7' },
    runs: { type: 'string', default: '3' },
    child: { type: 'boolean', default: false },
  },
});
const test = values.test.toUpperCase();
if (test !== 'SET' && test !== 'GET') throw new Error(`--test ${values.test}: SET or GET`);

/** The client socket a session reads commands from and writes replies to; counts replies. */
class FakeClient extends Duplex {
  readonly authorized = true;
  readonly remoteAddress = '127.0.0.1';
  private replies = 0;
  private want = 0;
  private done: (() => void) | undefined;

  constructor(private readonly cert: X509Certificate) {
    super();
  }

  getPeerX509Certificate(): X509Certificate {
    return this.cert;
  }

  override _read(): void {}

  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    this.count(chunk);
    cb();
  }

  override _writev(chunks: { chunk: Buffer }[], cb: () => void): void {
    for (const c of chunks) this.count(c.chunk);
    cb();
  }

  /** Sends `chunk` and resolves once `n` more replies came back (each starts `+`, `$` or `-`: no line of ours contains those). */
  send(chunk: Buffer, n: number): Promise<void> {
    return new Promise((resolve) => {
      this.want = this.replies + n;
      this.done = resolve;
      this.push(chunk);
    });
  }

  private count(bytes: Buffer): void {
    for (const c of bytes) if (c === 0x2b || c === 0x24 || c === 0x2d) this.replies++;
    if (this.done && this.replies >= this.want) {
      const done = this.done;
      this.done = undefined;
      done();
    }
  }
}

/** One build's measurement in this process: per round, CPU ns per command. */
async function measure(dist: string, rounds: number): Promise<number[]> {
  const from = (p: string) => import(path.join(dist, p)) as Promise<unknown>;
  const { startRedis, redisDatabaseDocs, REDIS_USERS } = (await from(
    'test/support/redis.js',
  )) as typeof RedisSupport;
  const { startTestAgent } = (await from('test/support/agent.js')) as typeof AgentSupport;
  const { createBenchPki, benchPolicyDocs } = (await from('bench/redis-bench-setup.js')) as typeof BenchSetup;
  const { RedisSession } = (await from('src/engines/redis/session.js')) as typeof SessionModule;
  const redis = await startRedis();
  const pki = await createBenchPki('drawbridge-session-bench-');
  const docs = [
    ...redisDatabaseDocs({
      name: 'bench',
      uri: `redis://127.0.0.1:${redis.plainPort}`,
      labels: { env: 'bench' },
      auth: 'password',
      login: { default: REDIS_USERS.default.password },
    }),
    ...benchPolicyDocs(),
  ];
  const agent = await startTestAgent({ database: 'bench', docs, tls: pki.tls });
  const runtime = agent.running.agent as unknown as AgentRuntime & { engine: { openRouter: OpenRouter } };
  const cert = new X509Certificate(pki.client.certPem);
  const clients = Array.from({ length: SESSIONS }, () => new FakeClient(cert));
  for (const c of clients) {
    const socket = c as unknown as TLSSocket;
    new RedisSession(socket, runtime, '127.0.0.1:1', Date.now(), runtime.engine.openRouter).start(
      Date.now() + 10_000,
    );
  }
  const key = 'key:__rand_int__';
  const set = `*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$3\r\nxxx\r\n`;
  const one = test === 'SET' ? set : `*2\r\n$3\r\nGET\r\n$${key.length}\r\n${key}\r\n`;
  const chunk = Buffer.from(one.repeat(PIPELINE));
  await Promise.all(clients.map((c) => c.send(Buffer.from(set), 1))); // logs each session in
  const loop = (n: number) =>
    Promise.all(
      clients.map(async (c) => {
        for (let i = 0; i < n; i++) await c.send(chunk, PIPELINE);
      }),
    );
  await loop(500); // warm-up: the JIT's optimised code
  const iterations = Math.round(PER_ROUND / SESSIONS / PIPELINE);
  const out: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const before = process.cpuUsage();
    await loop(iterations);
    const used = process.cpuUsage(before);
    out.push(((used.user + used.system) * 1000) / (iterations * SESSIONS * PIPELINE));
  }
  for (const c of clients) c.destroy();
  await agent.stop(100);
  await redis.stop();
  await rm(pki.dir, { recursive: true, force: true });
  return out;
}

if (values.child) {
  const rounds = await measure(positionals[0]!, Number(values.rounds));
  console.log(JSON.stringify(rounds));
  process.exit(0);
}

const dists = positionals.length > 0 ? positionals.map((d) => path.resolve(d)) : [here];
const runs = Number(values.runs);
const results = new Map<string, { median: number[]; min: number[] }>(
  dists.map((d) => [d, { median: [], min: [] }]),
);
for (let run = 0; run < runs; run++) {
  const order = run % 2 === 0 ? dists : [...dists].reverse();
  for (const dist of order) {
    // With the V8 options the build's agent runs with (its CLI's launcher line).
    const node = launcherOptions(path.join(dist, 'src/cli/drawbridge.js'));
    const script = new URL(import.meta.url).pathname;
    const args = [...node, script, '--child', '--test', test, '--rounds', values.rounds, dist];
    const child = spawnSync(process.execPath, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    if (child.status !== 0) throw new Error(`${dist}: exited ${child.status}`);
    const rounds = JSON.parse(child.stdout.trim().split('\n').pop()!) as number[];
    const s = spread(rounds);
    results.get(dist)!.median.push(s.median);
    results.get(dist)!.min.push(s.min);
    console.log(`  ${dist} ${test}: median ${s.median.toFixed(0)} min ${s.min.toFixed(0)} ns/command`);
  }
}
console.log(`${test}, ns of CPU per command (whole process), median (min–max) of ${runs} processes each:`);
for (const [dist, r] of results) {
  console.log(
    `  ${dist}: median ${formatSpread(spread(r.median), 0)}  fastest round ${formatSpread(spread(r.min), 0)}`,
  );
}
