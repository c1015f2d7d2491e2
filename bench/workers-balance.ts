// How evenly two ways of sharing one port spread connections over an agent's workers, and what each
// costs per connection: node:cluster round-robin (the primary accepts and hands each connection to the
// next worker; what the agent uses) and SO_REUSEPORT (`reusePort`, Node >= 22.12: each worker binds,
// the kernel picks by a hash of the client's address and port). Plain TCP servers that answer with their
// worker number, so only the sharing is measured. Run: node dist/bench/workers-balance.js (Node 24 for
// the reusePort row). Env: WORKERS (2), TRIALS (200).
import cluster from 'node:cluster';
import { type Socket, connect, createServer } from 'node:net';
import { freePort } from '../test/support/ports.js';

const WORKERS = Number(process.env.WORKERS ?? 2);
const TRIALS = Number(process.env.TRIALS ?? 200);
const CONNECTS = 2_000;
type Mode = 'round-robin' | 'reusePort';

if (cluster.isWorker) {
  const server = createServer((s) => s.end(process.env.WORKER ?? '0'));
  const port = Number(process.env.PORT);
  const opts =
    process.env.MODE === 'reusePort'
      ? { port, host: '127.0.0.1', reusePort: true, exclusive: true }
      : { port, host: '127.0.0.1' };
  server.listen(opts, () => process.send!('up'));
} else {
  const modes: Mode[] = ['round-robin'];
  const [major, minor] = process.versions.node.split('.').map(Number) as [number, number];
  if (major > 22 || (major === 22 && minor >= 12)) modes.push('reusePort');
  console.log(`${WORKERS} workers, Node ${process.version}, ${TRIALS} trials per pool size`);
  for (const mode of modes) await measure(mode);
  process.exit(0);
}

async function measure(mode: Mode): Promise<void> {
  cluster.schedulingPolicy = mode === 'round-robin' ? cluster.SCHED_RR : cluster.SCHED_NONE;
  const port = await freePort();
  let up = 0;
  const ready = new Promise<void>((resolve) =>
    cluster.on('message', (_w, m) => m === 'up' && ++up === WORKERS && resolve()),
  );
  const workers = Array.from({ length: WORKERS }, (_, i) =>
    cluster.fork({ WORKER: String(i), PORT: String(port), MODE: mode }),
  );
  await ready;
  const rows: string[] = [];
  for (const pool of [4, 8, 16, 64]) {
    // A pool of long-lived connections: how many the busiest worker holds over an even share.
    let worst = 0;
    let total = 0;
    for (let t = 0; t < TRIALS; t++) {
      const counts = new Array<number>(WORKERS).fill(0);
      const sockets = await Promise.all(Array.from({ length: pool }, () => open(port)));
      for (const [s, worker] of sockets) {
        counts[worker]!++;
        s.destroy();
      }
      const over = Math.max(...counts) / (pool / WORKERS);
      worst = Math.max(worst, over);
      total += over;
    }
    rows.push(
      `pool ${pool}: busiest worker ${(total / TRIALS).toFixed(2)}x its share (worst ${worst.toFixed(2)}x)`,
    );
  }
  const started = process.hrtime.bigint();
  for (let i = 0; i < CONNECTS; i++) (await open(port))[0].destroy();
  const us = Number(process.hrtime.bigint() - started) / 1e3 / CONNECTS;
  console.log(`${mode}: ${rows.join('; ')}; ${us.toFixed(0)} µs per sequential connect`);
  for (const w of workers) w.kill();
  await new Promise((r) => setTimeout(r, 200));
  cluster.removeAllListeners('message');
}

/** A connection and the worker that answered it. */
function open(port: number): Promise<[Socket, number]> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.once('data', (d) => resolve([s, Number(d.toString())]));
    s.once('error', reject);
  });
}
