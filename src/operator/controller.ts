// Runs one reconciler over a work queue, controller-runtime style. A reconcile receives a key only and
// re-reads everything from informer caches, so it does the same thing however often it runs.
//
// What a reconcile's outcome means:
// - resolves with `{ requeueAfterMs }`: done for now, look again after that long (periodic checks);
// - resolves with nothing: done; the next watch event brings the key back;
// - throws TerminalError: the input cannot work as it is (already reported in status); wait for a change;
// - throws anything else: transient (API conflict, network); retried with per-key exponential backoff.
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { ControllerMetrics } from './metrics.js';
import { WorkQueue } from './workqueue.js';

export interface ReconcileResult {
  requeueAfterMs?: number;
}

export interface Reconciler {
  readonly name: string;
  reconcile(key: string): Promise<ReconcileResult | void>;
}

/** Retrying will not help; the reconcile has reported why and waits for the object to change. */
export class TerminalError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TerminalError';
  }
}

export class Controller {
  readonly queue = new WorkQueue();
  private workers: Promise<void>[] = [];

  constructor(
    private readonly reconciler: Reconciler,
    private readonly log: Logger,
    private readonly concurrency = 4,
    private readonly metrics?: ControllerMetrics,
  ) {
    metrics?.watchQueue(reconciler.name, this.queue);
  }

  enqueue(key: string): void {
    this.queue.add(key);
  }

  start(): void {
    for (let i = 0; i < this.concurrency; i++) this.workers.push(this.work());
  }

  /** Stops taking keys and waits for reconciles already running. */
  async stop(): Promise<void> {
    this.queue.shutDown();
    await Promise.all(this.workers);
  }

  private async work(): Promise<void> {
    for (;;) {
      const key = await this.queue.get();
      if (key === undefined) return;
      try {
        await this.runOnce(key);
      } finally {
        this.queue.done(key);
      }
    }
  }

  private async runOnce(key: string): Promise<void> {
    const name = this.reconciler.name;
    const started = performance.now();
    const done = (result: 'success' | 'requeue' | 'terminal' | 'error') =>
      this.metrics?.observe(name, result, (performance.now() - started) / 1000);
    try {
      const result = await this.reconciler.reconcile(key);
      this.queue.forget(key);
      if (result?.requeueAfterMs !== undefined) this.queue.addAfter(key, result.requeueAfterMs);
      done(result?.requeueAfterMs !== undefined ? 'requeue' : 'success');
    } catch (err) {
      if (err instanceof TerminalError) {
        done('terminal');
        this.queue.forget(key);
        this.log.warn({ controller: name, key, err: err.message }, 'reconcile failed; waiting for a change');
        return;
      }
      done('error');
      const failures = this.queue.failuresOf(key);
      this.log[failures >= 5 ? 'warn' : 'debug'](
        { controller: name, key, err: errorMessage(err), failures },
        'reconcile failed; retrying with backoff',
      );
      this.queue.addRateLimited(key);
    }
  }
}
