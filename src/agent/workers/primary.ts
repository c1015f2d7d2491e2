// An agent replica as N worker processes sharing its listening port. The primary serves no client: it
// forks the workers (node:cluster), restarts one that dies, routes what one worker asks the others (a
// PostgreSQL CancelRequest landing on a worker that does not hold the session), keeps the one audit
// log (audit-relay.ts: relays the workers' lines unless they append to a file themselves), holds the
// connection counts of the whole replica (limits.maxConnections and maxConnectionsPerIdentity: a worker
// takes a slot here per connection and identity, and a worker that dies gives back all of its own),
// knows each worker's live sessions (a worker that dies gets their session.end written here), answers
// /metrics with the sum over the workers and /healthz while at least one worker listens, and on
// SIGTERM tells every worker to drain. In cluster it also keeps the agent's one set of watches
// (incluster-watch.ts), standalone it reads and watches the config file (config-file.ts), and passes
// each state on to every worker in order, the current one first to a worker that starts; in cluster
// it also asks the API server the workers' TokenReviews.
//
// Port sharing: node:cluster's round-robin, the primary accepting each connection and handing it to a
// worker. SO_REUSEPORT (`reusePort`, Node >= 22.12) lets the kernel pick instead, by a hash of the
// client's address and port. Measured on Node 24 with 2 workers (bench/workers-balance.ts, 200 pools
// each): the busiest worker held 1.06-1.08x its share of a pool of 4-16 connections with round-robin,
// 1.22-1.37x (often all 4 of 4) with reusePort. Proxy clients hold few, long connections (a pool of 10,
// pgbench -c 8), so an uneven split leaves a worker idle while the other is saturated, for the life of
// the pool. The price is the primary's hop per accept: 139 vs 85 µs per sequential plain-TCP connect,
// small beside a TLS handshake. Round-robin also works alike on Node 20 and 24.
import cluster, { type Worker } from 'node:cluster';
import type { Server } from 'node:http';
import type { Readable } from 'node:stream';
import { AggregatorRegistry, Counter, Gauge } from 'prom-client';
import { errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { WorkerRequest } from '../engine.js';
import type { StateSource } from '../incluster-watch.js';
import type { ConfigSource, StandaloneConfig } from '../standalone.js';
import type { StateSnapshot } from '../state.js';
import { Slots } from '../limits.js';
import { AgentMetrics } from '../metrics.js';
import { serveMetrics } from '../metrics-server.js';
import { AuditRelay } from './audit-relay.js';
import {
  AUDIT_APPEND_ENV,
  AUDIT_FD,
  type SessionFields,
  type ToPrimary,
  type ToWorker,
  WORKER_ENV,
  type WorkerMetrics,
  toWire,
} from './protocol.js';

export interface WorkerPoolOptions {
  workers: number;
  log: Logger;
  /** `NS/NAME` (in cluster) or the Database's name: the `database` label on every series. */
  database: string;
  /** Where /metrics and /healthz are served (`host:port`), if anywhere. */
  metrics?: string;
  /** The audit log ("-" for stdout) and how far behind it may fall before workers are held. */
  audit: { path: string; bufferBytes: number };
  /** In cluster: the watches whose state the workers serve (they keep none of their own). */
  state?: StateSource;
  /** Standalone: the config file whose config the workers serve (they never parse it themselves). */
  config?: ConfigSource;
  /**
   * Every worker keeps dying as it starts (e.g. a TLS key it cannot read): the pool stops restarting
   * them and calls this, so the process can exit and its supervisor (the kubelet) show the crash loop.
   */
  onCrashLoop?(reason: string): void;
}

/** A worker that dies within this long of its start is restarted after a growing pause. */
const STABLE_MS = 10_000;
const MAX_RESTART_DELAY_MS = 30_000;
/** Quick deaths in a row, with no worker listening in between or now, before the pool gives up. */
const CRASH_LOOP_DEATHS = 5;
const SCRAPE_TIMEOUT_MS = 3_000;
/** How long workers get to drain (10 s), end their sessions and write their audit, before a kill. */
const EXIT_GRACE_MS = 25_000;

interface Slot {
  worker: Worker;
  startedAt: number;
  listening: boolean;
  /** The connection slots this worker holds (of `WorkerPool.held`). */
  held: Slots;
  /** Its live sessions by id: the primary ends them in the audit log if the worker dies. */
  sessions: Map<string, SessionFields>;
  /** Its audit pipe, unless it appends to the log itself. */
  pipe: Readable | undefined;
  /** It asked for the state and is sent every change. */
  subscribed: boolean;
}

/** One worker's ask, waiting for its siblings' answers. */
interface Ask {
  from: Worker;
  id: number;
  waiting: Set<Worker>;
}

/** One /metrics request, waiting for the workers' registries. */
interface Scrape {
  waiting: Set<Worker>;
  results: WorkerMetrics[];
  resolve(results: WorkerMetrics[]): void;
}

export class WorkerPool {
  private readonly slots: (Slot | undefined)[] = [];
  private readonly asks = new Map<number, Ask>();
  private readonly scrapes = new Map<number, Scrape>();
  /** Connection slots held over all workers. */
  private readonly held = new Slots();
  private nextId = 0;
  private restartDelayMs = 0;
  /** Quick worker deaths since a worker last started listening or ran stably. */
  private quickDeaths = 0;
  private draining = false;
  private drained: (() => void) | undefined;
  private readonly relay: AuditRelay;
  /** The primary's own series: its process, the audit relay, and the two below. */
  private readonly metrics = new AgentMetrics(true);
  private readonly restarts = new Counter({
    name: 'drawbridge_agent_worker_restarts_total',
    help: 'Agent worker processes that exited unasked and were started again',
    registers: [this.metrics.registry],
  });
  private readonly workersUp: Gauge = new Gauge({
    name: 'drawbridge_agent_workers',
    help: 'Agent worker processes accepting connections (spec.agent.workers of them when healthy)',
    registers: [this.metrics.registry],
    collect: (): void => this.workersUp.set(this.listening()),
  });
  private metricsServer: Server | undefined;
  /** The state as the workers get it, encoded once per change. */
  private state: Extract<ToWorker, { t: 'state' }> | undefined;

  constructor(private readonly opts: WorkerPoolOptions) {
    this.relay = new AuditRelay(opts.audit.path, opts.audit.bufferBytes, opts.log);
    this.metrics.setDatabase(opts.database);
    this.metrics.observeAudit(this.relay);
    const publish = (msg: Extract<ToWorker, { t: 'state' }>) => {
      this.state = msg;
      for (const s of this.slots) if (s?.subscribed) this.send(s.worker, msg);
    };
    if (opts.state) {
      this.metrics.observeState(opts.state);
      const send = (state: StateSnapshot) => publish({ t: 'state', state: toWire(state) });
      send(opts.state.initial);
      opts.state.onUpdate(send);
    }
    if (opts.config) {
      const send = ({ state, spec }: StandaloneConfig) => publish({ t: 'state', state: toWire(state), spec });
      send(opts.config.initial);
      opts.config.onUpdate(send);
    }
  }

  async start(): Promise<void> {
    // The stdio slot AUDIT_FD is each worker's audit pipe; stdout and stderr (logs) are shared, but
    // for an audit log on stdout, whose lines the workers' must not land inside (audit-relay.ts).
    const stdout = this.relay.stdout ? 'pipe' : 'inherit';
    const stdio = ['inherit', stdout, 'inherit', 'ipc', ...(this.relay.direct ? [] : ['pipe'])];
    cluster.setupPrimary({ stdio });
    cluster.schedulingPolicy = cluster.SCHED_RR;
    for (let i = 0; i < this.opts.workers; i++) this.fork(i);
    if (this.opts.metrics) {
      const registry = { contentType: this.metrics.registry.contentType, metrics: () => this.collect() };
      const ready = () => this.listening() > 0;
      this.metricsServer = await serveMetrics(this.opts.metrics, { registry }, this.opts.log, ready);
    }
  }

  /** Workers accepting connections now. */
  listening(): number {
    return this.slots.filter((s) => s?.listening).length;
  }

  /** Every worker drains (stops accepting, sessions get their drain time), then the audit log closes. */
  async stop(): Promise<void> {
    this.draining = true;
    const live = this.slots.filter((s): s is Slot => s !== undefined);
    if (live.length > 0) {
      const exited = new Promise<void>((resolve) => (this.drained = resolve));
      for (const { worker } of live) this.send(worker, { t: 'drain' });
      const grace = setTimeout(() => {
        this.opts.log.warn('agent workers still running after their drain: killing them');
        for (const s of this.slots) s?.worker.process.kill('SIGKILL');
      }, EXIT_GRACE_MS);
      await exited;
      clearTimeout(grace);
    }
    this.metricsServer?.close();
    await this.opts.state?.stop();
    this.opts.config?.stop();
    await this.relay.close(5_000);
  }

  private fork(index: number): void {
    const append = this.relay.direct ? { [AUDIT_APPEND_ENV]: '1' } : {};
    const worker = cluster.fork({ [WORKER_ENV]: String(index), ...append });
    const pipe = this.relay.direct ? undefined : (worker.process.stdio![AUDIT_FD] as Readable);
    const sessions = new Map<string, SessionFields>();
    this.slots[index] = {
      worker,
      startedAt: Date.now(),
      listening: false,
      held: new Slots(),
      sessions,
      pipe,
      subscribed: false,
    };
    if (pipe) this.relay.attach(pipe, index);
    if (this.relay.stdout) this.relay.attach(worker.process.stdout!, index, true);
    worker.on('message', (msg: ToPrimary) => this.received(index, worker, msg));
    // A send that races the worker's death fails with EPIPE as an 'error' event: unhandled, it would
    // throw here and take every other worker's sessions down with the primary. Its exit follows.
    worker.on('error', (err) =>
      this.opts.log.warn(
        { worker: index, err: errorMessage(err) },
        'agent worker unreachable; it is exiting',
      ),
    );
    worker.once('exit', (code, signal) => this.exited(index, worker, code, signal));
  }

  private exited(index: number, worker: Worker, code: number | null, signal: string | null): void {
    const slot = this.slots[index];
    if (slot?.worker !== worker) return;
    this.slots[index] = undefined;
    // Its connections died with it: their slots free, their sessions end in the audit log.
    for (const [key, count] of slot.held.entries()) this.held.release(key, count);
    const reason = `agent worker exited (${signal ? `signal ${signal}` : `code ${code}`})`;
    this.relay.endSessions(slot.pipe, slot.sessions.values(), reason);
    for (const [id, ask] of this.asks) this.answered(id, ask, worker, false);
    for (const [id, scrape] of this.scrapes) this.scraped(id, scrape, worker, []);
    if (this.draining) {
      if (this.slots.every((s) => s === undefined)) this.drained?.();
      return;
    }
    // A crash loop must not spin: quick deaths double the pause, a stable run resets it.
    const stable = Date.now() - slot.startedAt > STABLE_MS;
    this.restartDelayMs = stable
      ? 0
      : Math.min(Math.max(1_000, this.restartDelayMs * 2), MAX_RESTART_DELAY_MS);
    this.quickDeaths = stable ? 0 : this.quickDeaths + 1;
    // Restarting forever inside a live process would hide the loop behind a 503 /healthz.
    if (this.quickDeaths >= CRASH_LOOP_DEATHS && this.listening() === 0 && this.opts.onCrashLoop) {
      this.draining = true;
      return this.opts.onCrashLoop(
        `${reason} ${this.quickDeaths} times in a row, each within ${STABLE_MS / 1000} s of its start`,
      );
    }
    this.restarts.inc();
    this.opts.log.error(
      { worker: index, code, signal, sessionsEnded: slot.sessions.size, restartInMs: this.restartDelayMs },
      'agent worker exited; starting it again (drawbridge_agent_worker_restarts_total)',
    );
    setTimeout(() => this.draining || this.fork(index), this.restartDelayMs);
  }

  private received(index: number, from: Worker, msg: ToPrimary): void {
    switch (msg.t) {
      case 'listening':
        if (this.slots[index]) this.slots[index].listening = true;
        this.quickDeaths = 0;
        return;
      case 'ask':
        return this.route(from, msg.id, msg.request);
      case 'take': {
        const slot = this.own(index, from);
        if (!slot) return;
        const held = this.held.take(msg.key, msg.cap);
        if (held < msg.cap) slot.held.take(msg.key, Infinity);
        return this.send(from, { t: 'taken', id: msg.id, held });
      }
      case 'release': {
        const slot = this.own(index, from);
        if (!slot) return;
        slot.held.release(msg.key);
        return this.held.release(msg.key);
      }
      case 'opened':
        return void this.own(index, from)?.sessions.set(msg.session.sessionId, msg.session);
      case 'closed':
        return void this.own(index, from)?.sessions.delete(msg.sessionId);
      case 'subscribe': {
        const slot = this.own(index, from);
        if (!slot || !this.state) return;
        slot.subscribed = true;
        return this.send(from, this.state);
      }
      case 'review':
        return this.review(from, msg.id, msg.spec);
      case 'answer': {
        const ask = this.asks.get(msg.id);
        return ask && this.answered(msg.id, ask, from, msg.handled);
      }
      case 'metrics': {
        const scrape = this.scrapes.get(msg.id);
        return scrape && this.scraped(msg.id, scrape, from, msg.metrics);
      }
    }
  }

  private review(from: Worker, id: number, spec: { token: string; audiences: string[] }): void {
    const api = this.opts.state?.tokenReview;
    if (!api) return this.send(from, { t: 'reviewed', id, error: 'this agent has no Kubernetes API' });
    api(spec).then(
      (status) => this.send(from, { t: 'reviewed', id, status }),
      (err: unknown) => this.send(from, { t: 'reviewed', id, error: errorMessage(err) }),
    );
  }

  /** Sends one worker's ask to every other worker; the first that handles it settles it. */
  private route(from: Worker, id: number, request: WorkerRequest): void {
    const others = this.connected().filter((w) => w !== from);
    if (others.length === 0) return this.send(from, { t: 'answered', id, handled: false });
    const routed = this.nextId++;
    this.asks.set(routed, { from, id, waiting: new Set(others) });
    for (const w of others) this.send(w, { t: 'ask', id: routed, request });
  }

  private answered(routed: number, ask: Ask, by: Worker, handled: boolean): void {
    if (!ask.waiting.delete(by)) return;
    if (!handled && ask.waiting.size > 0) return;
    this.asks.delete(routed);
    this.send(ask.from, { t: 'answered', id: ask.id, handled });
  }

  /** The Prometheus text of the primary's own metrics and every worker's, summed series by series. */
  private async collect(): Promise<string> {
    const workers = this.connected();
    const id = this.nextId++;
    const results = await new Promise<WorkerMetrics[]>((resolve) => {
      this.scrapes.set(id, { waiting: new Set(workers), results: [], resolve });
      setTimeout(() => this.finishScrape(id), SCRAPE_TIMEOUT_MS).unref();
      for (const w of workers) this.send(w, { t: 'metrics', id });
      if (workers.length === 0) this.finishScrape(id);
    });
    const own = (await this.metrics.registry.getMetricsAsJSON()) as WorkerMetrics;
    return AggregatorRegistry.aggregate([...results, own]).metrics();
  }

  private scraped(id: number, scrape: Scrape, by: Worker, metrics: WorkerMetrics): void {
    if (!scrape.waiting.delete(by)) return;
    scrape.results.push(metrics);
    if (scrape.waiting.size === 0) this.finishScrape(id);
  }

  private finishScrape(id: number): void {
    const scrape = this.scrapes.get(id);
    if (!scrape) return;
    this.scrapes.delete(id);
    scrape.resolve(scrape.results);
  }

  /** The slot of worker `index` while `worker` is still the one in it (not an exited predecessor). */
  private own(index: number, worker: Worker): Slot | undefined {
    const slot = this.slots[index];
    return slot?.worker === worker ? slot : undefined;
  }

  private connected(): Worker[] {
    return this.slots.flatMap((s) => (s?.worker.isConnected() ? [s.worker] : []));
  }

  private send(worker: Worker, msg: ToWorker): void {
    if (worker.isConnected()) worker.send(msg);
  }
}
