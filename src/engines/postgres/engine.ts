// Connection handling for one PostgreSQL client, from the first byte to an established session.
// The steps, and why each is where it is, are in the comments below; see index.ts for the diagram.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { limitOf } from '../../agent/limits.js';
import { newSessionId, revoked } from '../../agent/sessions.js';
import type { Identity } from '../../authn/identity.js';
import { DrawbridgeError, type ErrorCode, errorMessage, isDrawbridgeError } from '../../errors.js';
import type { AgentRuntime, Engine, WorkerRequest } from '../../agent/engine.js';
import { type BackendTarget, backendTarget, loginBackend, openBackend } from './backend.js';
import { type CancelKey, CancelKeys, type CancelTarget, forwardCancel } from './cancel.js';
import { CancelPeers } from './cancel-peers.js';
import { decodeBackendKey } from './decoders.js';
import { fatalFor } from './errors.js';
import { type StartupRequest, identify, negotiate, startupRequest } from './frontend.js';
import { BackendCode } from './messages.js';
import { BACKEND_LIMITS } from './parser.js';
import { AUTHENTICATION_OK, backendKeyData, negotiateProtocolVersion } from './serializer.js';
import { PostgresSession } from './session.js';
import { SpareBackend } from './spare.js';
import type { Wire } from './wire.js';

/**
 * Once the client has authenticated (limits.authTimeout, like PostgreSQL's authentication_timeout),
 * the backend login and startup must finish within this time.
 */
const STARTUP_TIMEOUT_MS = 30_000;

/** The session of a backend that sent no BackendKeyData: no key is registered under it. */
const NO_KEY: CancelKey = { processId: 0, secretKey: 0 };

const DENIED_HINT =
  'ask an administrator for an AccessRole that allows it; kubectl db ls shows what you may use';

/**
 * The sockets of a connection still in its handshake. If the client goes away, or a deadline passes
 * (authentication, then startup), everything opened for it is closed, so no backend connection
 * outlives its client.
 */
class Handshake {
  client: Socket;
  /** When the client connected: session setup time is measured from here. */
  readonly openedAt = Date.now();
  private readonly backends = new Set<Socket>();
  private readonly watched: Socket[] = [];
  private timer: NodeJS.Timeout;

  constructor(
    socket: Socket,
    private readonly agent: AgentRuntime,
  ) {
    this.client = socket;
    this.watch(socket);
    this.timer = setTimeout(this.authTimedOut, agent.limits.authTimeoutMs);
    this.timer.unref();
  }

  /** Like PostgreSQL: a FATAL once TLS is up; before that (startup packet, handshake) just a close. */
  private readonly authTimedOut = (): void => {
    const ms = this.agent.limits.authTimeoutMs;
    this.agent.limitExceeded('authTimeout', { clientAddress: this.client.remoteAddress });
    if (!('encrypted' in this.client)) return this.abort();
    this.refuse(
      new DrawbridgeError(
        'AUTH_TIMEOUT',
        `canceling authentication due to timeout: not authenticated within ${ms} ms (limits.authTimeout)`,
        'connect with the client certificate from kubectl db login, or send the ServiceAccount token as the password at once',
      ),
    );
  };

  /** The client is who it says: the rest of the startup gets its own deadline. */
  authenticated(): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(this.abort, STARTUP_TIMEOUT_MS);
    this.timer.unref();
  }

  private readonly abort = (): void => {
    this.client.destroy();
    this.backends.forEach((s) => s.destroy());
  };

  private watch(s: Socket): void {
    s.once('close', this.abort);
    this.watched.push(s);
  }

  upgraded(tls: TLSSocket): void {
    this.client = tls;
    this.watch(tls);
  }

  /** A backend socket opened for this client. Its own failures reach the login as errors, not here. */
  backend(s: Socket): void {
    this.backends.add(s);
    if (this.client.destroyed) this.abort();
  }

  /** The session owns the sockets from here on. */
  done(): void {
    clearTimeout(this.timer);
    this.watched.forEach((s) => s.off('close', this.abort));
  }

  /** Tells the client why, in its own protocol, then closes everything. */
  refuse(err: unknown): void {
    this.done();
    this.backends.forEach((s) => s.destroy());
    if (this.client.destroyed) return;
    this.client.end(fatalFor(err));
    const client = this.client;
    setTimeout(() => client.destroy(), 1_000).unref();
  }
}

/** What the client handshake established. */
interface Authenticated {
  tls: TLSSocket;
  wire: Wire;
  identity: Identity;
  request: StartupRequest;
}

export class PostgresEngine implements Engine {
  readonly protocol = 'postgres' as const;
  private readonly cancelKeys = new CancelKeys();
  private readonly spare = new SpareBackend(openBackend);
  private peers: CancelPeers | undefined;

  async close(): Promise<void> {
    this.spare.close();
  }

  handleConnection(socket: Socket, agent: AgentRuntime, refusal?: DrawbridgeError): void {
    socket.setNoDelay(true);
    const hs = new Handshake(socket, agent);
    this.serve(hs, agent, refusal).catch((err) => {
      this.logRefusal(err, agent, hs.openedAt);
      hs.refuse(err);
    });
  }

  private async serve(hs: Handshake, agent: AgentRuntime, refusal?: DrawbridgeError): Promise<void> {
    const socket = hs.client;
    // 1. Encryption first: SSLRequest → 'S' → TLS. Plaintext startups are refused with a FATAL that
    //    names the fix; a CancelRequest may arrive here, in plaintext, on its own connection.
    const hello = await negotiate(socket, agent.serverTls(), (tls) => hs.upgraded(tls));
    if (hello.kind === 'cancel') {
      hs.done();
      return this.cancel(hello, socket, agent);
    }
    const { tls, wire } = hello;
    // Over maxConnections: a cancel still goes through (above), a session gets "too many clients".
    if (refusal) throw refusal;
    // 2. Who and what: identity from the client certificate (or a ServiceAccount token), the database
    //    user and name from the startup packet. Protocol extensions we do not speak are declined now,
    //    as a server would, so the client continues with plain 3.0.
    const request = startupRequest(hello.params);
    if (hello.minor > 0 || request.unsupportedOptions.length > 0) {
      tls.write(negotiateProtocolVersion(0, request.unsupportedOptions));
    }
    const identity = await identify(tls, wire, agent.tokenVerifier);
    hs.authenticated();
    await agent.claimIdentity(identity, tls);
    try {
      await this.login(hs, agent, { tls, wire, identity, request });
    } catch (err) {
      agent.releaseIdentity(identity);
      throw err;
    }
  }

  /** Steps 3-6, holding one of the identity's connection slots (the session releases it when it ends). */
  private async login(
    hs: Handshake,
    agent: AgentRuntime,
    { tls, wire, identity, request }: Authenticated,
  ): Promise<void> {
    const { dbUser, dbName } = request;

    // 3. Access check before any backend work: a denied person never causes a database connection.
    //    A startup setting that would switch the backend to another role is a denial of its own.
    const refusal = request.roleChange;
    if (refusal)
      agent.clientLog.info({ user: identity.user, dbUser, dbName, reason: refusal.message }, 'access denied');
    const since = agent.sessions.changes;
    let decision = refusal
      ? { allowed: false as const, reason: refusal.message }
      : agent.authorize(identity, dbUser, dbName);
    if (!decision.allowed) {
      agent.metrics.sessionOutcome('postgres', 'denied', hs.openedAt);
      deniedEvent(agent, identity.user, dbUser, dbName, decision.reason);
      throw refusal ?? new DrawbridgeError('ACCESS_DENIED', decision.reason, DENIED_HINT);
    }

    // 4. Backend login with the agent's credential for this database user; the client never sees it.
    const database = agent.state.database;
    const credential = await agent.credentials().get({ database, dbUser, dbName });
    const target = backendTarget(database, agent.state, credential);
    const backendWire = await loginBackend({
      target,
      credential,
      params: [['user', credential.user], ['database', dbName], ...request.forward],
      secretName: database.spec.auth.secretRef?.name ?? '',
      opened: (s) => hs.backend(s),
      spare: this.spare,
    });

    // 5. Replay the backend's session parameters to the client, swapping its cancel secret for ours.
    const key = await this.relayStartup(tls, backendWire, target);
    if (!key) {
      agent.metrics.sessionOutcome('postgres', 'failed', hs.openedAt);
      agent.releaseIdentity(identity);
      return hs.done();
    }

    // 6. Relay. The session is tracked so policy changes and TTLs can end it. One that came while the
    //    backend logged in re-checked the sessions tracked then, not this one: it is decided again.
    if (agent.sessions.changes !== since) {
      decision = agent.authorize(identity, dbUser, dbName);
      if (!decision.allowed) {
        this.cancelKeys.release(key);
        agent.metrics.sessionOutcome('postgres', 'denied', hs.openedAt);
        const err = revoked(decision.reason);
        deniedEvent(agent, identity.user, dbUser, dbName, err.message);
        throw err;
      }
    }
    hs.done();
    if (tls.destroyed || backendWire.socket.destroyed) {
      this.cancelKeys.release(key);
      throw new DrawbridgeError('PROTOCOL_ERROR', 'the connection closed during startup');
    }
    const id = newSessionId();
    const session = new PostgresSession(agent, {
      id,
      identity,
      dbUser,
      dbName,
      client: tls,
      backend: backendWire.socket,
      clientRest: wire.detach(),
      backendRest: backendWire.detach(),
      startFields: {
        reason: decision.reason,
        identitySource: identity.source,
        groups: identity.groups,
        backendUser: credential.user,
        clientAddress: `${tls.remoteAddress}:${tls.remotePort}`,
        // The server's process id: pg_stat_activity.pid, and the key the client was given.
        backendPid: key.processId,
        // What the server was told besides user and database (`options=-c search_path=…`): it shapes
        // what every statement of the session does. At most the 10000-byte startup packet.
        startupParameters: Object.fromEntries(request.forward),
      },
      // Not a closure over this function's scope: that would keep the whole handshake alive per session.
      onEnd: this.cancelKeys.releaser(key),
    });
    agent.sessions.add(session, decision.ttlMs);
    agent.metrics.sessionOutcome('postgres', 'established', hs.openedAt);
    agent.metrics.sessionsActive.inc({ protocol: 'postgres' });
    session.start();
  }

  /**
   * Forwards AuthenticationOk, ParameterStatus, notices and ReadyForQuery in one TLS flush. An
   * ErrorResponse here (e.g. the database name does not exist) is the backend's own: it goes to the
   * client as is, and the connection ends.
   */
  private async relayStartup(
    tls: TLSSocket,
    backend: Wire,
    target: BackendTarget,
  ): Promise<CancelKey | undefined> {
    tls.cork();
    try {
      tls.write(AUTHENTICATION_OK);
      let key: CancelKey | undefined;
      for (;;) {
        const msg = await backend.message(BACKEND_LIMITS);
        switch (msg.code) {
          case BackendCode.BackendKeyData: {
            if (key) this.cancelKeys.release(key);
            key = this.cancelKeys.issue({ target, ...decodeBackendKey(msg.body) });
            tls.write(backendKeyData(key.processId, key.secretKey));
            break;
          }
          case BackendCode.ErrorResponse:
            if (key) this.cancelKeys.release(key);
            tls.end(msg.frame);
            backend.socket.destroy();
            return undefined;
          case BackendCode.ReadyForQuery:
            tls.write(msg.frame);
            // A backend that sends no key (some poolers): the client gets none either, nothing to cancel.
            return key ?? NO_KEY;
          default:
            tls.write(msg.frame);
        }
      }
    } finally {
      tls.uncork();
    }
  }

  private async cancel(
    key: CancelKey & { fromPeer: boolean },
    socket: Socket,
    agent: AgentRuntime,
  ): Promise<void> {
    // Like PostgreSQL: no answer either way, so a prober learns nothing about which keys exist.
    socket.destroy();
    const backend = this.cancelKeys.lookup(key);
    if (backend) return forward(backend, agent);
    // Cancels arrive on new connections, balanced: another worker process of this replica, or another
    // replica, may hold the session. The one that does checks the key against its own.
    const { processId, secretKey } = key;
    if (await agent.askWorkers({ cancel: 'postgres', processId, secretKey })) return;
    const peers = key.fromPeer ? [] : agent.peers();
    if (peers.length === 0) return agent.log.debug('cancel request with an unknown key ignored');
    this.peers ??= new CancelPeers(agent.log);
    const reached = await this.peers.relay(key, peers);
    agent.log.debug({ reached }, 'cancel request with an unknown key relayed to peer replicas');
  }

  /** Another worker's cancel: forwarded when the key is one of this worker's sessions. */
  async handleWorkerRequest(request: WorkerRequest, agent: AgentRuntime): Promise<boolean> {
    const { cancel, processId, secretKey } = request;
    if (cancel !== 'postgres' || typeof processId !== 'number' || typeof secretKey !== 'number') return false;
    const backend = this.cancelKeys.lookup({ processId, secretKey });
    if (!backend) return false;
    await forward(backend, agent);
    return true;
  }

  private logRefusal(err: unknown, agent: AgentRuntime, openedAt: number): void {
    const limit = isDrawbridgeError(err) ? limitOf(err.code, false) : undefined;
    if (!isDrawbridgeError(err)) {
      agent.log.error({ err }, 'postgres connection failed unexpectedly');
    } else if (limit) {
      agent.limitExceeded(limit, { err: err.message });
    } else if (!DENIALS.has(err.code) && err.code !== 'TOO_MANY_CONNECTIONS') {
      // Denials are logged and counted by agent.authorize, limits by agent.limitExceeded. A budget per
      // code: strangers' failed handshakes do not hide the backend's failures.
      const fields = { code: err.code, err: err.message };
      agent.clientLog.info(fields, 'postgres connection refused', err.code);
    }
    if (!isDrawbridgeError(err) || !DENIALS.has(err.code))
      agent.metrics.sessionOutcome('postgres', 'failed', openedAt, err);
  }
}

/** Refusals of access (counted as denied where they are decided, not as failed sessions). */
const DENIALS: ReadonlySet<ErrorCode> = new Set(['ACCESS_DENIED', 'SESSION_REVOKED']);

function deniedEvent(
  agent: AgentRuntime,
  user: string,
  dbUser: string,
  dbName: string,
  reason: string,
): void {
  agent.audit.emit({
    type: 'session.denied',
    sessionId: newSessionId(),
    database: agent.state.database.metadata.name,
    protocol: 'postgres',
    user,
    dbUser,
    dbName,
    reason,
  });
}

function forward(backend: CancelTarget, agent: AgentRuntime): Promise<void> {
  return forwardCancel(backend).catch((err) =>
    agent.log.warn({ err: errorMessage(err) }, 'could not forward a cancel request to the database'),
  );
}
