// Prometheus metrics for the agent, one registry per agent so tests can run several in a process. An
// agent of several worker processes sums them (agent/workers/primary.ts): each metric's `aggregator`
// says how, where a sum would be wrong.
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { registerBuildInfo } from '../build-info.js';
import { pemCertificates } from '../pki/pem.js';
import { DrawbridgeError, type ErrorCode } from '../errors.js';
import { FastHistogram } from './fast-histogram.js';
import type { AuditStats } from './audit.js';

/** Redis commands timed: one in this many (a power of two), so timing costs ~1% of a command. */
export const COMMAND_SAMPLE = 32;

const BACKEND_CODES = new Set<ErrorCode>(['BACKEND_UNREACHABLE', 'BACKEND_TLS', 'BACKEND_AUTH_FAILED']);

export type SessionOutcome = 'established' | 'denied' | 'failed';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly sessionsActive = new Gauge({
    name: 'drawbridge_sessions_active',
    help: 'Client sessions currently open',
    labelNames: ['protocol'],
    registers: [this.registry],
  });
  readonly sessionsTotal = new Counter({
    name: 'drawbridge_sessions_total',
    help: 'Client sessions by outcome',
    labelNames: ['protocol', 'outcome'],
    registers: [this.registry],
  });
  readonly deniedTotal = new Counter({
    name: 'drawbridge_access_denied_total',
    help: 'Sessions and commands denied by access rules (reason, sessions: deny_rule, no_allow_rule, no_role; Redis commands: deny_rule, no_allow_rule, scripting, arguments)',
    labelNames: ['protocol', 'level', 'reason'],
    registers: [this.registry],
  });
  readonly tokensRefused = new Counter({
    name: 'drawbridge_tokens_refused_total',
    help: 'Workload tokens refused (reason: shared_audience, other_audience, expired, not_authenticated, review_failed)',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly tokensSharedAudience = new Counter({
    name: 'drawbridge_tokens_shared_audience_total',
    help: "Logins with a token for the shared audience drawbridge.dev (spec.workloads.acceptSharedAudience): workloads still to move to the Database's own",
    registers: [this.registry],
  });
  readonly clusterRedirectsRefused = new Counter({
    name: 'drawbridge_cluster_redirects_refused_total',
    help: 'Redis Cluster MOVED/ASK replies not followed, or TRYAGAIN/CLUSTERDOWN/LOADING not retried: from a script or function (reason=script), or to a node the cluster does not name',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly connections = new Gauge({
    name: 'drawbridge_client_connections',
    help: 'Client connections open, logged in or not (compare with limits.maxConnections)',
    labelNames: ['protocol'],
    registers: [this.registry],
  });
  readonly limitExceeded = new Counter({
    name: 'drawbridge_limit_exceeded_total',
    help: 'Clients refused or disconnected by a limit (label: its name in spec.agent.limits)',
    labelNames: ['protocol', 'limit'],
    registers: [this.registry],
  });
  readonly strangersClosed = new Counter({
    name: 'drawbridge_unauthenticated_connections_closed_total',
    help: 'Connections not yet authenticated closed, oldest first, to admit a new one at limits.maxConnections',
    labelNames: ['protocol'],
    registers: [this.registry],
  });
  readonly bytesTotal = new Counter({
    name: 'drawbridge_bytes_total',
    help: 'Bytes relayed',
    labelNames: ['protocol', 'direction'],
    registers: [this.registry],
  });

  /** From the client's TCP connection to the session being established or refused (TLS, identity, access, backend login). */
  readonly sessionSetup = new Histogram({
    name: 'drawbridge_session_setup_seconds',
    help: 'Time from client connection to the session established, denied or failed',
    labelNames: ['protocol', 'outcome'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  /**
   * Redis: one command in COMMAND_SAMPLE, from reaching the agent to its reply leaving; PostgreSQL: every
   * round trip, Query or Sync to ReadyForQuery. A FastHistogram: the agent's per-command cost stays flat.
   */
  readonly commandDuration = new FastHistogram(
    this.registry,
    'drawbridge_command_duration_seconds',
    'Command (Redis, sampled) or query round trip (PostgreSQL) latency through the agent, backend included',
    'protocol',
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
  );
  readonly backendErrors = new Counter({
    name: 'drawbridge_backend_errors_total',
    help: 'Sessions that failed on the backend: BACKEND_UNREACHABLE, BACKEND_TLS, BACKEND_AUTH_FAILED',
    labelNames: ['protocol', 'code'],
    registers: [this.registry],
  });
  private certificates: Record<string, string> = {};
  readonly certificateExpiry = new Gauge({
    name: 'drawbridge_certificate_expiry_timestamp_seconds',
    help: "When the agent's certificates expire (unix seconds): its serving certificate and the client CA (the first to expire of a rotation's trust bundle)",
    labelNames: ['certificate'],
    registers: [this.registry],
    // Worker processes read the same files: one value, not their sum.
    aggregator: 'min',
    // Read at scrape time, so a rotated Secret shows up without the agent being told.
    collect: () => this.collectExpiry(),
  });

  // The audit sink counts in plain fields (a drop is one increment, not a metric update); these read
  // them when scraped.
  private audit: AuditStats | undefined;
  readonly auditDropped: Counter = new Counter({
    name: 'drawbridge_audit_events_dropped_total',
    help: 'Audit events dropped because the audit log did not keep up (best-effort mode, or twice the buffer behind)',
    registers: [this.registry],
    collect: (): void => this.sync(this.auditDropped, this.audit?.dropped),
  });
  readonly auditWriteErrors: Counter = new Counter({
    name: 'drawbridge_audit_write_errors_total',
    help: 'Failed writes to the audit log (each is retried from the same byte)',
    registers: [this.registry],
    collect: (): void => this.sync(this.auditWriteErrors, this.audit?.writeErrors),
  });
  readonly auditPendingBytes: Gauge = new Gauge({
    name: 'drawbridge_audit_pending_bytes',
    help: 'Audit event bytes waiting to be written',
    registers: [this.registry],
    collect: (): void => this.auditPendingBytes.set(this.audit?.pendingBytes ?? 0),
  });
  readonly auditHeld: Gauge = new Gauge({
    name: 'drawbridge_audit_sessions_held',
    help: '1 while sessions wait for the audit log (required mode, log failing or behind)',
    registers: [this.registry],
    aggregator: 'max',
    collect: (): void => this.auditHeld.set(this.audit?.held ? 1 : 0),
  });

  // Only the process that watches the API server reports a value (a worker's source has no staleMs).
  private stateSource: { staleMs?(): number; reviewsRefused?(): number } | undefined;
  readonly stateStale: Gauge = new Gauge({
    name: 'drawbridge_state_stale_seconds',
    help: 'How long the agent has enforced roles, users and Secrets it cannot refresh: its longest-failing watch of the API server (0 while all are open)',
    registers: [this.registry],
    aggregator: 'max',
    collect: (): void => this.stateStale.set((this.stateSource?.staleMs?.() ?? 0) / 1000),
  });

  readonly tokenReviewsRefused: Counter = new Counter({
    name: 'drawbridge_token_reviews_refused_total',
    help: 'ServiceAccount tokens not checked: more distinct ones than the agent sends the API server (TokenReviews, 50/s)',
    registers: [this.registry],
    collect: (): void => this.sync(this.tokenReviewsRefused, this.stateSource?.reviewsRefused?.()),
  });

  observeState(source: { staleMs?(): number; reviewsRefused?(): number }): void {
    this.stateSource = source;
  }

  observeAudit(stats: AuditStats | undefined): void {
    this.audit = stats;
  }

  private sync(counter: Counter, total = 0): void {
    counter.reset();
    counter.inc(total);
  }

  constructor(defaults = false) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
    registerBuildInfo(this.registry, 'agent');
  }

  /** Every series gets `database="NS/NAME"`, so sessions and denials read by database across agents. */
  setDatabase(database: string): void {
    this.registry.setDefaultLabels({ database });
  }

  /** PEM files whose expiry is exported, by name (`serving`, `client_ca`). */
  watchCertificates(files: Record<string, string>): void {
    this.certificates = files;
  }

  /**
   * Counts a session's outcome and how long getting there took (`openedAtMs`: Date.now() at connect);
   * `err`, the failure's cause, counts as a backend error when its code says the backend failed.
   */
  sessionOutcome(protocol: string, outcome: SessionOutcome, openedAtMs: number, err?: unknown): void {
    this.sessionsTotal.inc({ protocol, outcome });
    this.sessionSetup.observe({ protocol, outcome }, (Date.now() - openedAtMs) / 1000);
    if (err instanceof DrawbridgeError && BACKEND_CODES.has(err.code)) {
      this.backendErrors.inc({ protocol, code: err.code });
    }
  }

  private collectExpiry(): void {
    this.certificateExpiry.reset();
    for (const [certificate, file] of Object.entries(this.certificates)) {
      try {
        // A bundle (a CA rotation's old and new CA): the one that expires first is the one to act on.
        const pems = pemCertificates(readFileSync(file, 'latin1'));
        const expiry = Math.min(...pems.map((pem) => Date.parse(new X509Certificate(pem).validTo)));
        if (Number.isFinite(expiry)) this.certificateExpiry.set({ certificate }, Math.floor(expiry / 1000));
      } catch {
        // Missing or unreadable right now (a Secret volume mid-swap): no sample rather than a wrong one.
      }
    }
  }
}
