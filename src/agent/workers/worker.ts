// A worker process's end of the agent's worker pool (primary.ts holds the other): it answers the
// primary's metric scrapes from the agent's registry, forwards the agent's asks to its sibling
// workers and answers theirs, takes connection slots from the primary's replica-wide counts, and
// drains when the primary says so. It takes the agent's state from the primary: in cluster from its
// watches (and has it ask the API server its TokenReviews: a worker loads no Kubernetes client),
// standalone the config file the primary parsed and validated (a worker loads no YAML parser or zod).
import type { Registry } from 'prom-client';
import type { TokenReviewApi, TokenReviewStatus } from '../../authn/tokenreview.js';
import { DrawbridgeError } from '../../errors.js';
import type { WorkerRequest } from '../engine.js';
import type { StateSource } from '../incluster-watch.js';
import type { ConfigSource, StandaloneConfig } from '../standalone.js';
import type { LiveSession, SessionWatcher } from '../sessions.js';
import type { ToPrimary, ToWorker, WorkerMetrics } from './protocol.js';
import { AUDIT_APPEND_ENV, AUDIT_FD, WORKER_ENV, fromWire } from './protocol.js';

/**
 * What the agent needs from its worker pool (absent when it runs as a single process). As the agent's
 * SessionWatcher it tells the primary of each session, so a worker's crash still ends them in the audit.
 */
export interface WorkerChannel extends SessionWatcher {
  /** Resolves true when a sibling worker handled the request, false when none did (or in time). */
  ask(request: WorkerRequest): Promise<boolean>;
  /** Answers the siblings' asks. */
  answerWith(handler: (request: WorkerRequest) => Promise<boolean>): void;
  /** The agent accepts connections now. */
  listening(): void;
  /** Slots.take on the primary's counts for the whole replica. */
  take(key: string | null, cap: number): Promise<number>;
  release(key: string | null): void;
}

type StateMessage = Extract<ToWorker, { t: 'state' }>;

/** A sibling that does not answer (busy, exiting) must not hold a cancel for long. */
const ASK_TIMEOUT_MS = 3_000;
/** A flood of bogus cancels must not queue without bound: past this many waiting, asks are refused. */
const MAX_ASKS_IN_FLIGHT = 256;
/** A connection slot normally comes back in well under a millisecond: past this, the primary is stuck. */
export const TAKE_TIMEOUT_MS = 5_000;

/** The IPC channel to the primary: `process` in a worker (a test passes its own). */
export interface PrimaryChannel {
  readonly connected: boolean;
  send(msg: ToPrimary): unknown;
  on(event: 'message', listener: (msg: ToWorker) => void): unknown;
}

export class WorkerLink implements WorkerChannel {
  /** This worker's number, 0…N-1 (a restarted worker keeps its predecessor's). */
  readonly index = Number(process.env[WORKER_ENV] ?? 0);
  /**
   * The audit pipe to the primary, which writes every worker's lines to the one audit log; none when
   * the log is a regular file this worker appends to itself (audit-relay.ts).
   */
  readonly auditFd = process.env[AUDIT_APPEND_ENV] ? undefined : AUDIT_FD;
  private readonly asks = new Map<number, (handled: boolean) => void>();
  private readonly takes = new Map<number, (held: number) => void>();
  private readonly reviews = new Map<
    number,
    (answer: { status?: TokenReviewStatus; error?: string }) => void
  >();
  /** Where the primary's state messages go once subscribe() asked for them. */
  private stateTo: ((msg: StateMessage) => void) | undefined;
  private nextId = 0;
  private handler: ((request: WorkerRequest) => Promise<boolean>) | undefined;
  private registry: Registry | undefined;
  private drain: (() => void) | undefined;

  constructor(private readonly primary: PrimaryChannel = process as PrimaryChannel) {
    primary.on('message', (msg) => this.received(msg));
  }

  /** The primary asked this worker to stop accepting and drain: `stop` runs once. */
  onDrain(stop: () => void): void {
    this.drain = stop;
  }

  /** The registry whose metrics the primary adds to its /metrics. */
  exportMetrics(registry: Registry): void {
    this.registry = registry;
  }

  /** Tells the primary this worker accepts connections (its /healthz counts listening workers). */
  listening(): void {
    this.send({ t: 'listening' });
  }

  ask(request: WorkerRequest): Promise<boolean> {
    if (this.asks.size >= MAX_ASKS_IN_FLIGHT) return Promise.resolve(false);
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.settle(id, false), ASK_TIMEOUT_MS);
      this.asks.set(id, (handled) => {
        clearTimeout(timer);
        resolve(handled);
      });
      this.send({ t: 'ask', id, request });
    });
  }

  /** Rejects with AGENT_UNRESPONSIVE when the primary does not answer within TAKE_TIMEOUT_MS. */
  take(key: string | null, cap: number): Promise<number> {
    // Without the primary this worker is exiting (node:cluster ends a worker whose channel closes).
    if (!this.primary.connected) return Promise.resolve(0);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        // The primary may still count the slot when it answers at last: it is given back then.
        this.takes.set(id, (held) => held < cap && this.release(key));
        reject(unresponsive());
      }, TAKE_TIMEOUT_MS);
      this.takes.set(id, (held) => {
        clearTimeout(timer);
        resolve(held);
      });
      this.send({ t: 'take', id, key, cap });
    });
  }

  release(key: string | null): void {
    this.send({ t: 'release', key });
  }

  opened(session: LiveSession): void {
    const { database, dbUser, dbName } = session.request();
    const { name } = database.metadata;
    const fields = { sessionId: session.id, database: name, protocol: database.spec.protocol };
    this.send({ t: 'opened', session: { ...fields, user: session.identity.user, dbUser, dbName } });
  }

  closed(sessionId: string): void {
    this.send({ t: 'closed', sessionId });
  }

  /**
   * The agent's state as the primary's watches have it: resolves with the current state, and every
   * change follows in the order the primary built them. Until it resolves this worker does not listen,
   * so a worker started late (a restart) never serves from a state older than its siblings'.
   */
  async clusterState(): Promise<StateSource> {
    const { initial, onUpdate } = await this.subscribe();
    return {
      initial: fromWire(initial.state),
      onUpdate: (listener) => onUpdate((msg) => listener(fromWire(msg.state))),
      tokenReview: this.tokenReview,
      stop: () => {
        this.stateTo = undefined;
        return Promise.resolve();
      },
    };
  }

  /** The standalone agent's config as the primary read it from `path`, then each good edit; see clusterState. */
  async standaloneConfig(path: string): Promise<ConfigSource> {
    const config = (msg: StateMessage): StandaloneConfig => {
      if (!msg.spec) throw new Error("the agent's primary sent no AgentConfig spec");
      return { spec: msg.spec, state: fromWire(msg.state) };
    };
    const { initial, onUpdate } = await this.subscribe();
    return {
      path,
      initial: config(initial),
      onUpdate: (listener) => onUpdate((msg) => listener(config(msg))),
      stop: () => (this.stateTo = undefined),
    };
  }

  /** The primary's current state message, and every later one to `onUpdate`'s listeners, in order. */
  private subscribe(): Promise<{ initial: StateMessage; onUpdate(l: (msg: StateMessage) => void): void }> {
    const listeners: ((msg: StateMessage) => void)[] = [];
    return new Promise((resolve) => {
      this.stateTo = (initial) => {
        this.stateTo = (later) => listeners.forEach((l) => l(later));
        resolve({ initial, onUpdate: (listener) => listeners.push(listener) });
      };
      this.send({ t: 'subscribe' });
    });
  }

  /** A TokenReview through the primary; rejects like the API call it stands for when that fails. */
  private readonly tokenReview: TokenReviewApi = (spec) => {
    if (!this.primary.connected) return Promise.reject(new Error("the agent's primary process is gone"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.reviews.set(id, ({ status, error }) => (status ? resolve(status) : reject(new Error(error))));
      this.send({ t: 'review', id, spec });
    });
  };

  answerWith(handler: (request: WorkerRequest) => Promise<boolean>): void {
    this.handler = handler;
  }

  private received(msg: ToWorker): void {
    switch (msg.t) {
      case 'drain':
        return this.drain?.();
      case 'answered':
        return this.settle(msg.id, msg.handled);
      case 'taken': {
        const resolve = this.takes.get(msg.id);
        this.takes.delete(msg.id);
        return resolve?.(msg.held);
      }
      case 'state':
        return this.stateTo?.(msg);
      case 'reviewed': {
        const settle = this.reviews.get(msg.id);
        this.reviews.delete(msg.id);
        return settle?.(msg);
      }
      case 'ask': {
        const answer = this.handler ? this.handler(msg.request) : Promise.resolve(false);
        return void answer.then(
          (handled) => this.send({ t: 'answer', id: msg.id, handled }),
          () => this.send({ t: 'answer', id: msg.id, handled: false }),
        );
      }
      case 'metrics': {
        const metrics = this.registry?.getMetricsAsJSON() ?? Promise.resolve([]);
        return void metrics.then(
          (m) => this.send({ t: 'metrics', id: msg.id, metrics: m as WorkerMetrics }),
          () => this.send({ t: 'metrics', id: msg.id, metrics: [] }),
        );
      }
    }
  }

  private settle(id: number, handled: boolean): void {
    const resolve = this.asks.get(id);
    this.asks.delete(id);
    resolve?.(handled);
  }

  private send(msg: ToPrimary): void {
    // The channel closes as the worker exits: what is lost then no longer matters.
    if (this.primary.connected) this.primary.send(msg);
  }
}

function unresponsive(): DrawbridgeError {
  return new DrawbridgeError(
    'AGENT_UNRESPONSIVE',
    `the agent's primary process did not count this connection within ${TAKE_TIMEOUT_MS / 1000}s`,
    "retry; if it persists the agent pod is short of CPU: raise its CPU limit or lower spec.agent.workers, and check the primary's log",
  );
}
