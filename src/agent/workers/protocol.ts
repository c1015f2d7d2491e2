// The messages between an agent's primary process and its workers, over the IPC channel node:cluster
// opens for each worker (JSON: plain data only). Audit lines do not go here but through a pipe of
// their own (AUDIT_FD), so a burst of events never queues behind, or ahead of, these.
import type { MetricObjectWithValues, MetricValue } from 'prom-client';
import type { AgentConfig } from '../../api/agent-config.js';
import type { TokenReviewStatus } from '../../authn/tokenreview.js';
import type { AuditEvent } from '../audit.js';
import type { WorkerRequest } from '../engine.js';
import type { StateSnapshot } from '../state.js';

/** The worker's stdio slot for its audit pipe (after stdin, stdout, stderr and the IPC channel). */
export const AUDIT_FD = 4;
/** Which worker a process is (0…N-1), set by the primary in the worker's environment. */
export const WORKER_ENV = 'DRAWBRIDGE_WORKER';
/** Set ("1") when the audit log is a regular file the workers append to themselves (no AUDIT_FD pipe). */
export const AUDIT_APPEND_ENV = 'DRAWBRIDGE_WORKER_AUDIT_APPEND';

export type WorkerMetrics = MetricObjectWithValues<MetricValue<string>>[];

/** The fields every audit event of a session carries: what the primary needs for its session.end. */
export type SessionFields = Pick<
  AuditEvent,
  'sessionId' | 'database' | 'protocol' | 'user' | 'dbUser' | 'dbName'
>;

/** A StateSnapshot as the channel carries it (a Map does not survive JSON). */
export type WireState = Omit<StateSnapshot, 'secrets'> & { secrets: [string, Record<string, string>][] };

export const toWire = (s: StateSnapshot): WireState => ({ ...s, secrets: [...s.secrets] });
export const fromWire = (w: WireState): StateSnapshot => ({ ...w, secrets: new Map(w.secrets) });

export type ToWorker =
  | { t: 'drain' }
  | { t: 'metrics'; id: number }
  /** Another worker's askWorkers, for this one to answer. */
  | { t: 'ask'; id: number; request: WorkerRequest }
  /** The outcome of this worker's own askWorkers. */
  | { t: 'answered'; id: number; handled: boolean }
  /** How many connection slots `key` held before this worker's take (see Slots.take). */
  | { t: 'taken'; id: number; held: number }
  /**
   * The agent's state from the primary's watches (in cluster) or config file (standalone, with the
   * AgentConfig's spec): the current one, then each change.
   */
  | { t: 'state'; state: WireState; spec?: AgentConfig['spec'] }
  /** The outcome of this worker's TokenReview: the review's status, or why the API call failed. */
  | { t: 'reviewed'; id: number; status?: TokenReviewStatus; error?: string };

export type ToPrimary =
  | { t: 'listening' }
  | { t: 'metrics'; id: number; metrics: WorkerMetrics }
  | { t: 'ask'; id: number; request: WorkerRequest }
  | { t: 'answer'; id: number; handled: boolean }
  /** A connection slot, counted for the whole replica: `key` an identity's user, null every connection. */
  | { t: 'take'; id: number; key: string | null; cap: number }
  | { t: 'release'; key: string | null }
  /** A session started (or changed user): the primary ends it in the audit log if this worker dies. */
  | { t: 'opened'; session: SessionFields }
  | { t: 'closed'; sessionId: string }
  /** This worker serves the primary's state (API server or config file): send it now, then every change. */
  | { t: 'subscribe' }
  /** A TokenReview of a workload token, which only the primary (holding the Kubernetes client) can ask. */
  | { t: 'review'; id: number; spec: { token: string; audiences: string[] } };
