// The agent: one listener in front of one Database. It accepts TCP connections and hands each to the
// protocol engine; access, audit, credentials and session tracking are shared services engines call.
import { type Server, type Socket, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SecureContext } from 'node:tls';
import type { Database, Protocol } from '../api/database.js';
import type { AgentLimitsSpec } from '../api/limits.js';
import { type AuditMode, type Limits, parseDuration, resolveLimits } from '../api/runtime.js';
import type { Identity, TokenVerifier } from '../authn/identity.js';
import { type Decision, certificateOutlivesRoles, checkAccess } from '../authz/engine.js';
import { DrawbridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AuditGuarantee, AuditSink } from './audit.js';
import { type CredentialProvider, type CredentialProviders, credentialProvider } from './credentials.js';
import type { AgentParts, AgentRuntime, Engine, WorkerRequest } from './engine.js';
import { type LimitName, Slots, tooManyConnections, tooManyForIdentity } from './limits.js';
import { listenError } from './listen-error.js';
import { LogBudget } from './log-budget.js';
import { AgentMetrics } from './metrics.js';
import { SessionRegistry } from './sessions.js';
import { acceptedSocket } from './tls.js';
import type { AgentState } from './state.js';
import type { WorkerChannel } from './workers/worker.js';

/** Where the client listener's address comes from, in either mode. */
const LISTEN_SETTING = "--listen, or spec.listen in a standalone agent's config";
export interface AgentOptions {
  /** The engines and credential providers of this build (src/wiring.ts). */
  parts: AgentParts;
  state: AgentState;
  serverTls: SecureContext;
  audit: AuditSink;
  log: Logger;
  tokenVerifier?: TokenVerifier;
  metrics?: AgentMetrics;
  /** Other replicas of this agent, `host:port` (see AgentRuntime.peers). */
  peers?: readonly string[];
  /** The AgentConfig's spec.limits (standalone), over the Database's spec.agent.limits. */
  limits?: AgentLimitsSpec;
  /** This agent is one of several worker processes of its replica (agent/workers). */
  workers?: WorkerChannel;
  /**
   * Refuse client certificates issued for longer than the roles deciding a session allow: in a cluster,
   * where the controller signs them for the maxSessionTTL of one namespace's roles (certificateOutlivesRoles).
   */
  roleBoundCertificates?: boolean;
  /** The platform's audit mode (Helm agents.audit.enforce): the Database's spec.audit.mode is ignored. */
  auditModeEnforced?: AuditMode;
}

/**
 * What a Database's spec.audit overrides of the agent's defaults, and the mode it asked for in vain
 * when the platform enforces its own. Only the mode is pinned: best-effort is what lets events drop,
 * while any stallTimeout still holds commands until their events are written.
 */
export function auditOverride(
  audit: Database['spec']['audit'],
  enforced: AuditMode | undefined,
): { override: Partial<AuditGuarantee>; ignored?: AuditMode } {
  const stallTimeoutMs = audit.stallTimeout ? parseDuration(audit.stallTimeout) : undefined;
  if (!enforced) return { override: { mode: audit.mode, stallTimeoutMs } };
  const ignored = audit.mode && audit.mode !== enforced ? audit.mode : undefined;
  return { override: { mode: enforced, stallTimeoutMs }, ...(ignored ? { ignored } : {}) };
}

/**
 * Connections past maxConnections still get a protocol error after their TLS handshake; beyond this
 * many more at once they are dropped unanswered, so a connection flood holds no more than that.
 */
const REFUSAL_SLOTS = 64;

/** What askWorkers answers without other workers to ask. */
const noWorker = Promise.resolve(false);

export class Agent implements AgentRuntime {
  readonly state: AgentState;
  readonly audit: AuditSink;
  readonly log: Logger;
  readonly clientLog: LogBudget;
  readonly sessions: SessionRegistry;
  readonly metrics: AgentMetrics;
  readonly tokenVerifier?: TokenVerifier;
  private readonly roleBoundCertificates: boolean;
  private tlsContext: SecureContext;
  private peerList: readonly string[];
  private readonly providers: CredentialProviders;
  private provider: { type: string; provider: CredentialProvider } | undefined;
  private readonly engine: Engine;
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  /**
   * Accepted connections whose client has not proved who it is yet, oldest first. At maxConnections a
   * new connection closes the oldest of these (OpenSSH's MaxStartups, without the randomness), so
   * strangers holding idle connections can delay but never lock out those with a certificate or
   * token: authenticated sessions keep their slots, and each newcomer gets one from a stranger.
   */
  private readonly strangers = new Set<Socket>();
  private limitOverrides: AgentLimitsSpec | undefined;
  /** Connections per identity, when there is no primary to count them (workers: 1). */
  private readonly identities = new Slots();
  private readonly workers: WorkerChannel | undefined;
  private readonly auditModeEnforced: AuditMode | undefined;
  /** The spec.audit.mode last logged as ignored: told once, not on every policy change. */
  private auditModeIgnored: AuditMode | undefined;
  limits: Limits;

  /** An agent with its Database's engine, loaded (src/wiring.ts) before the agent takes a connection. */
  static async create(opts: AgentOptions): Promise<Agent> {
    return new Agent(opts, await engineFor(opts.parts, opts.state.database.spec.protocol));
  }

  private constructor(opts: AgentOptions, engine: Engine) {
    this.state = opts.state;
    this.audit = opts.audit;
    this.log = opts.log;
    this.clientLog = new LogBudget(opts.log);
    this.tokenVerifier = opts.tokenVerifier;
    this.roleBoundCertificates = opts.roleBoundCertificates ?? false;
    this.metrics = opts.metrics ?? new AgentMetrics();
    this.tlsContext = opts.serverTls;
    this.peerList = opts.peers ?? [];
    this.limitOverrides = opts.limits;
    this.limits = this.currentLimits();
    this.providers = opts.parts.credentials;
    this.engine = engine;
    this.workers = opts.workers;
    this.auditModeEnforced = opts.auditModeEnforced;
    // With workers, the primary learns of each session: it writes their session.end if this worker dies.
    this.sessions = new SessionRegistry(this.workers);
    this.workers?.answerWith((request) => this.engine.handleWorkerRequest?.(request, this) ?? noWorker);
    this.server = createServer({ noDelay: true, keepAlive: true }, (s) => this.accept(s));
    this.metrics.observeAudit(this.audit.stats);
    this.configureAudit();
    // Policy changes re-check every live session at once: revocation within the 5 s promise.
    this.state.on('change', () => {
      this.provider = undefined;
      this.limits = this.currentLimits();
      this.configureAudit();
      this.sessions.reevaluate(this.state.policy, this.state.database);
    });
  }

  /** The Database's own audit mode and stall timeout, over the agent's defaults (the mode may be pinned). */
  private configureAudit(): void {
    const { override, ignored } = auditOverride(this.state.database.spec.audit, this.auditModeEnforced);
    this.audit.configure?.(override);
    if (ignored && ignored !== this.auditModeIgnored) {
      this.log.warn(
        { requested: ignored, mode: override.mode },
        "the Database's spec.audit.mode is ignored: the platform enforces the agents' audit mode (Helm agents.audit.enforce)",
      );
    }
    this.auditModeIgnored = ignored;
  }

  private accept(socket: Socket): void {
    // A client error must never take the agent down; engines log and close their own sockets.
    socket.on('error', (err) => this.log.debug({ err: err.message }, 'client socket error'));
    if (!this.workers) return this.admit(socket, this.sockets.size, false);
    // The primary counts the connections of every worker.
    const cap = this.limits.maxConnections + REFUSAL_SLOTS;
    this.workers.take(null, cap).then(
      (held) => {
        if (held >= cap) return this.admit(socket, held, false);
        if (!socket.destroyed) return this.admit(socket, held, true);
        this.workers?.release(null);
      },
      (err: Error) => {
        this.log.warn({ err: err.message }, 'connection dropped: no connection slot');
        socket.destroy();
      },
    );
  }

  /** `held`: the connections open before this one; `shared`: counted by the primary, to give back. */
  private admit(socket: Socket, held: number, shared: boolean): void {
    const max = this.limits.maxConnections;
    const full = held >= max;
    const protocol = this.engine.protocol;
    if (held >= max + REFUSAL_SLOTS) {
      // A flood: counted, not logged line by line.
      this.metrics.limitExceeded.inc({ protocol, limit: 'maxConnections' });
      return void socket.destroy();
    }
    const admitted = !full || this.closeOldestStranger();
    if (!admitted) this.limitExceeded('maxConnections', { clientAddress: socket.remoteAddress });
    this.sockets.add(socket);
    this.strangers.add(socket);
    this.metrics.connections.inc({ protocol });
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.strangers.delete(socket);
      this.metrics.connections.dec({ protocol });
      if (shared) this.workers?.release(null);
    });
    try {
      this.engine.handleConnection(socket, this, admitted ? undefined : tooManyConnections(max));
    } catch (err) {
      this.log.error({ err }, 'engine failed to take a connection');
      socket.destroy();
    }
  }

  /** Makes room at maxConnections: closes this process's oldest unauthenticated connection, if any. */
  private closeOldestStranger(): boolean {
    const oldest = this.strangers.values().next().value;
    if (oldest === undefined) return false;
    this.strangers.delete(oldest);
    oldest.destroy();
    // Counted, not logged: a flood of strangers would otherwise be a flood of log lines.
    this.metrics.strangersClosed.inc({ protocol: this.engine.protocol });
    return true;
  }

  private currentLimits(): Limits {
    return resolveLimits(this.state.database.spec.agent.limits, this.limitOverrides);
  }

  /** The AgentConfig's limits changed (standalone reload). */
  setLimits(overrides: AgentLimitsSpec | undefined): void {
    this.limitOverrides = overrides;
    this.limits = this.currentLimits();
  }

  async claimIdentity(identity: Identity, client: Socket): Promise<void> {
    const max = this.limits.maxConnectionsPerIdentity;
    const { user } = identity;
    const held = this.workers ? await this.workers.take(user, max) : this.identities.take(user, max);
    if (held < max) return void this.strangers.delete(acceptedSocket(client));
    this.limitExceeded('maxConnectionsPerIdentity', { user });
    throw tooManyForIdentity(user, max);
  }

  releaseIdentity(identity: Identity): void {
    if (this.workers) this.workers.release(identity.user);
    else this.identities.release(identity.user);
  }

  limitExceeded(limit: LimitName, fields: Record<string, unknown>): void {
    this.metrics.limitExceeded.inc({ protocol: this.engine.protocol, limit });
    this.clientLog.info({ ...fields, limit }, 'client limit exceeded', limit);
  }

  serverTls(): SecureContext {
    return this.tlsContext;
  }

  setServerTls(ctx: SecureContext): void {
    this.tlsContext = ctx;
  }

  peers(): readonly string[] {
    return this.peerList;
  }

  setPeers(peers: readonly string[]): void {
    this.peerList = peers;
  }

  credentials(): CredentialProvider {
    const type = this.state.database.spec.auth.type;
    if (this.provider?.type !== type) {
      this.provider = {
        type,
        provider: credentialProvider(this.providers, type, {
          secrets: this.state,
          log: this.log,
        }),
      };
    }
    return this.provider.provider;
  }

  askWorkers(request: WorkerRequest): Promise<boolean> {
    return this.workers ? this.workers.ask(request) : noWorker;
  }

  authorize(identity: Identity, dbUser: string, dbName?: string): Decision {
    const database = this.state.database;
    let decision = checkAccess(identity, { database, dbUser, dbName }, this.state.policy);
    const outlives =
      decision.allowed && this.roleBoundCertificates && certificateOutlivesRoles(identity, decision.ttlMs);
    if (outlives) {
      const name = database.metadata.name;
      decision = {
        allowed: false,
        reason:
          `access to ${name} as database user "${dbUser}" denied: ${outlives}; log in to this Database ` +
          `for a certificate of its own (kubectl db login ${name} --db-user ${dbUser})`,
      };
    }
    if (!decision.allowed) {
      const reason = outlives
        ? 'certificate_ttl'
        : decision.rule === 'deny'
          ? 'deny_rule'
          : decision.rule
            ? 'no_allow_rule'
            : 'no_role';
      this.metrics.deniedTotal.inc({ protocol: database.spec.protocol, level: 'session', reason });
      this.clientLog.info({ user: identity.user, dbUser, dbName, reason: decision.reason }, 'access denied');
    }
    return decision;
  }

  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      const failed = (err: unknown) =>
        reject(listenError(err, 'client connections', `${host}:${port}`, LISTEN_SETTING));
      this.server.once('error', failed);
      this.server.listen(port, host, () => {
        this.server.off('error', failed);
        const addr = this.server.address();
        const bound = typeof addr === 'object' && addr ? addr.port : port;
        this.log.info({ host, port: bound, database: this.state.database.metadata.name }, 'agent listening');
        this.workers?.listening();
        resolve({ host, port: bound });
      });
    });
  }

  /** Stops accepting, lets sessions finish for `drainMs`, then ends the rest with a clear message. */
  async stop(drainMs = 10_000): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      const deadline = setTimeout(() => {
        this.sessions.terminateAll(
          new DrawbridgeError('AGENT_SHUTDOWN', 'the agent is shutting down', 'reconnect'),
        );
        setTimeout(() => this.sockets.forEach((s) => s.destroy()), 1000).unref();
      }, drainMs);
      deadline.unref();
      if (this.sockets.size === 0) clearTimeout(deadline);
    });
    await this.engine.close?.();
    // Sessions ended above write their session.end audit events as their sockets finish closing.
    for (let waited = 0; this.sessions.size > 0 && waited < 2_000; waited += 20) await sleep(20);
    await this.audit.close();
  }
}

function engineFor(parts: AgentParts, protocol: Protocol): Promise<Engine> {
  const create = parts.engines[protocol];
  if (!create) {
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      `protocol "${protocol}" is not available in this agent build`,
      'use one of: ' + Object.keys(parts.engines).join(', '),
    );
  }
  return create();
}
