// Prometheus metrics for the controller, served with /healthz on --health-listen (/metrics).
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { registerBuildInfo } from '../build-info.js';

export type ReconcileResult = 'success' | 'requeue' | 'terminal' | 'error';

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly reconcileDuration = new Histogram({
    name: 'drawbridge_controller_reconcile_duration_seconds',
    help: 'Time one reconcile took, by controller and result (success, requeue, terminal, error)',
    labelNames: ['controller', 'result'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: 'drawbridge_controller_reconcile_errors_total',
    help: 'Reconciles that failed and will be retried with backoff (terminal errors wait for a change instead)',
    labelNames: ['controller'],
    registers: [this.registry],
  });
  private readonly queues = new Map<string, { readonly length: number }>();
  readonly queueDepth = new Gauge({
    name: 'drawbridge_controller_queue_depth',
    help: 'Keys waiting in a work queue',
    labelNames: ['controller'],
    registers: [this.registry],
    collect: () => {
      for (const [controller, q] of this.queues) this.queueDepth.set({ controller }, q.length);
    },
  });
  readonly leader = new Gauge({
    name: 'drawbridge_controller_leader',
    help: '1 while this replica holds the leader Lease and does the work, else 0',
    registers: [this.registry],
  });

  readonly databaseReady = new Gauge({
    name: 'drawbridge_database_ready',
    help: '1 when a Database is Ready, 0 when not (its Ready condition says why); on the leader only',
    labelNames: ['namespace', 'database'],
    registers: [this.registry],
  });

  private staleMs: () => number = () => 0;
  readonly stale: Gauge = new Gauge({
    name: 'drawbridge_controller_stale_seconds',
    help: "How long the leader's longest-failing watch has failed: meanwhile it reconciles and signs logins (CSRs) from what it last saw; 0 while all are open",
    registers: [this.registry],
    collect: (): void => this.stale.set(this.staleMs() / 1000),
  });

  constructor(defaults = true) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
    registerBuildInfo(this.registry, 'controller');
    this.leader.set(0);
  }

  /** `ready` undefined: the Database is gone, and so is its series. */
  setDatabaseReady(key: string, ready: boolean | undefined): void {
    const [namespace = '', database = ''] = key.split('/');
    if (ready === undefined) this.databaseReady.remove({ namespace, database });
    else this.databaseReady.set({ namespace, database }, ready ? 1 : 0);
  }

  /** The leader's informers, once it leads. */
  observeStale(staleMs: () => number): void {
    this.staleMs = staleMs;
  }

  watchQueue(controller: string, queue: { readonly length: number }): void {
    this.queues.set(controller, queue);
  }

  observe(controller: string, result: ReconcileResult, seconds: number): void {
    this.reconcileDuration.observe({ controller, result }, seconds);
    if (result === 'error') this.reconcileErrors.inc({ controller });
  }
}
