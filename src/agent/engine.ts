// The engine contract, owned by the agent: what an engine gets from the agent (AgentRuntime) and what
// the agent needs from an engine. Engines import this; the agent never imports an engine — it is
// handed the engines and credential providers of its build as values (AgentParts, see src/wiring.ts).
import type { Socket } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { Protocol } from '../api/database.js';
import type { Limits } from '../api/limits.js';
import type { LimitName } from './limits.js';
import type { AuditSink } from './audit.js';
import type { AgentMetrics } from './metrics.js';
import type { SessionRegistry } from './sessions.js';
import type { AgentState } from './state.js';
import type { Identity, TokenVerifier } from '../authn/identity.js';
import type { Decision } from '../authz/engine.js';
import type { DrawbridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import type { LogBudget } from './log-budget.js';
import type { CredentialProvider, CredentialProviders } from './credentials.js';

/** What one worker process of an agent asks the others (plain data: it crosses processes). */
export type WorkerRequest = Readonly<Record<string, string | number | boolean>>;

export interface AgentRuntime {
  readonly log: Logger;
  /** For lines a client causes at its own pace (refusals, malformed input): a few per message a window. */
  readonly clientLog: LogBudget;
  readonly state: AgentState;
  readonly audit: AuditSink;
  readonly sessions: SessionRegistry;
  readonly metrics: AgentMetrics;
  /** Verifies projected ServiceAccount tokens sent as passwords; absent in standalone mode. */
  readonly tokenVerifier?: TokenVerifier;
  /** The agent's serving certificate, client CA and settings; replaced on reload. */
  serverTls(): SecureContext;
  /** Backend credentials for the current Database's `spec.auth.type`. */
  credentials(): CredentialProvider;
  /**
   * The other replicas of this agent (`host:port`; a name may resolve to several addresses), for what
   * must reach the replica holding a session: PostgreSQL cancels. Empty when there is one replica.
   */
  peers(): readonly string[];
  /**
   * Asks this replica's other worker processes (an agent may run several sharing its port, see
   * agent/workers): true when one of them handled the request (Engine.handleWorkerRequest), false when
   * none did or there are no others. For what must reach the worker holding a session.
   */
  askWorkers(request: WorkerRequest): Promise<boolean>;
  /** Access check against the current policy; denials are logged and counted here, audited by the engine. */
  authorize(identity: Identity, dbUser: string, dbName?: string): Decision;
  /** The client limits in force (replaced when the config changes; read it when needed, don't keep it). */
  readonly limits: Limits;
  /**
   * Takes one of the identity's connection slots once the engine knows who the client is; rejects with
   * TOO_MANY_CONNECTIONS (counted and logged) when it holds maxConnectionsPerIdentity already (over
   * all worker processes: then the primary answers). Every successful claim is released once, when
   * the connection ends. `client` (the connection's TLS socket): from here on it is no stranger's, so
   * an agent at maxConnections never closes it to admit another (it closes the oldest not yet claimed).
   */
  claimIdentity(identity: Identity, client: Socket): Promise<void>;
  releaseIdentity(identity: Identity): void;
  /** A client hit a limit and is refused or disconnected: counted in metrics and logged. */
  limitExceeded(limit: LimitName, fields: Record<string, unknown>): void;
}

export interface Engine {
  readonly protocol: Protocol;
  /**
   * Takes over a freshly accepted plaintext TCP socket; owns it until it closes. With `refusal` (the
   * agent is at maxConnections) the engine tells the client so in its own protocol and closes.
   */
  handleConnection(socket: Socket, agent: AgentRuntime, refusal?: DrawbridgeError): void;
  /** Another worker process's askWorkers: true when this worker handled the request. */
  handleWorkerRequest?(request: WorkerRequest, agent: AgentRuntime): Promise<boolean>;
  /** Releases shared resources (pools, topology refreshers) at agent shutdown. */
  close?(): Promise<void>;
}

/** What an agent is built from: an engine per protocol, and the backend credential providers. */
export interface AgentParts {
  /**
   * Makes the engine for one agent; called once per agent, which closes it at shutdown. Asynchronous:
   * each loads its engine's modules (src/wiring.ts), so an agent holds only its own protocol's code.
   */
  readonly engines: Partial<Record<Protocol, () => Promise<Engine>>>;
  readonly credentials: CredentialProviders;
}
