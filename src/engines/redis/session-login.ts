// Who a Redis session is and as which database user it reaches the backend. Before any AUTH the
// database user is `default`, as in Redis. Every AUTH (or HELLO ... AUTH) is checked against the
// AccessRoles and may switch the user: the backend connection then logs in again with the new
// user's credential, in command order. The backend login always matches the authorized user.
import type { Identity } from '../../authn/identity.js';
import type { Decision } from '../../authz/engine.js';
import { auditValue } from '../../agent/audit.js';
import { revoked } from '../../agent/sessions.js';
import { backendAddress } from '../../api/runtime.js';
import { DrawbridgeError, type ErrorCode, errorMessage } from '../../errors.js';
import { type AuthRequest, authIdentity } from './client-auth.js';
import { backendFacts } from './command-catalog.js';
import { type BackendLogin, RedisReplyError } from './router.js';
import type { RespVersion } from './serializer.js';
import type { RedisSession } from './session.js';

type Allowed = Extract<Decision, { allowed: true }>;

const REFUSALS = new Set<ErrorCode>([
  'ACCESS_DENIED',
  'AUTHN_FAILED',
  'BACKEND_AUTH_FAILED',
  'SESSION_REVOKED',
]);

const NOBODY: Identity = { user: '', groups: [], source: 'certificate' };

export interface ClientFacts {
  certificate: Identity | undefined;
  /** The client sent a certificate the agent does not accept (expired, other CA). */
  certError: DrawbridgeError | undefined;
  clientAddress: string;
}

export class SessionLogin {
  dbUser = 'default';
  private current: Identity | undefined;
  private decision: Allowed | undefined;
  private backend: BackendLogin | undefined;
  /** Who the AUTH in progress turned out to be (audited when it is refused). */
  private attempt: Identity | undefined;
  /** The identity holding one of its connection slots for this session: the client authenticated. */
  private claimed: Identity | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(
    private readonly s: RedisSession,
    private readonly client: ClientFacts,
  ) {
    this.current = client.certificate;
  }

  get identity(): Identity {
    return this.current ?? NOBODY;
  }

  get user(): string {
    return this.identity.user;
  }

  get authenticated(): boolean {
    return this.claimed !== undefined;
  }

  /** A certificate's identity takes its connection slot now; anyone else must AUTH by `deadline`. */
  begin(deadline: number): void {
    const certificate = this.client.certificate;
    if (certificate) {
      // Known by its certificate: its commands wait for the slot (the primary's answer, with several
      // workers) under a logged-in client's limits; over its connection limit admit ends the session.
      this.s.authenticated();
      return this.s.runExclusive(() => this.admit(certificate));
    }
    const limits = this.s.agent.limits;
    this.deadline = setTimeout(
      () => {
        this.s.agent.limitExceeded('authTimeout', { clientAddress: this.client.clientAddress });
        this.s.terminate(
          new DrawbridgeError(
            'AUTH_TIMEOUT',
            `no successful AUTH within ${limits.authTimeoutMs} ms of connecting (limits.authTimeout)`,
            'connect with the client certificate from kubectl db login, or AUTH <db-user> <projected token> at once',
          ),
        );
      },
      Math.max(0, deadline - Date.now()),
    );
    this.deadline.unref();
  }

  /** Releases the connection slot (the session is over). */
  end(): void {
    clearTimeout(this.deadline);
    this.ended = true;
    if (this.claimed) this.s.agent.releaseIdentity(this.claimed);
    this.claimed = undefined;
  }

  /** The first backend connection, as the current database user; `protocol`: see RouterOptions. */
  async connect(protocol?: RespVersion): Promise<void> {
    if (this.client.certError) throw this.client.certError;
    const identity = this.current;
    if (!identity) {
      throw new RedisReplyError(
        'NOAUTH',
        'Authentication required. (hint: connect with the client certificate from kubectl db login, or AUTH <db-user> <projected token>)',
      );
    }
    await this.audited(this.dbUser, async () => {
      const since = this.s.agent.sessions.changes;
      const decision = this.check(identity, this.dbUser);
      const login = this.backend ?? (await this.backendLogin(this.dbUser, undefined));
      await this.open(login, protocol);
      await this.commit(identity, this.dbUser, decision, login, since);
    });
  }

  /** AUTH user pass: authenticate, authorize, then log the backend in as `user` (HELLO: in `protocol`). */
  async auth(req: AuthRequest, protocol?: RespVersion): Promise<void> {
    if (this.client.certError) throw this.client.certError;
    await this.audited(req.user, async () => {
      const tracking = this.s.trackingUser;
      if (tracking !== undefined && tracking !== req.user) throw trackingSwitch(tracking, req.user);
      const identity = await authIdentity(this.client.certificate, req.password, this.s.agent.tokenVerifier);
      this.attempt = identity;
      const since = this.s.agent.sessions.changes;
      const decision = this.check(identity, req.user);
      // With a certificate the password is the client's own database password (passthrough).
      const password = identity.source === 'certificate' ? req.password : undefined;
      const login = await this.backendLogin(req.user, password);
      const router = this.s.connected;
      if (router) await router.relogin(login);
      else await this.open(login, protocol);
      await this.commit(identity, req.user, decision, login, since);
    });
  }

  /**
   * RESET logs the backend connection out (to `default`, DB 0); log it back in as the session's user.
   * If that fails the connection is `default` now, which nobody authorized: the session ends.
   */
  async restore(): Promise<void> {
    if (!this.backend) return;
    try {
      await this.s.connected?.restore(this.backend, this.s.agent.state.database);
    } catch (err) {
      this.s.replies.push(this.s.errorBytes(err));
      this.s.closeAfterReplies(`the backend login after RESET failed: ${errorMessage(err)}`);
    }
  }

  /** Refused logins are audited and counted as denied; other failures (backend down) as failed. */
  private async audited(dbUser: string, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (err) {
      const refused = err instanceof DrawbridgeError && REFUSALS.has(err.code);
      this.s.agent.metrics.sessionOutcome('redis', refused ? 'denied' : 'failed', this.s.openedAt, err);
      if (refused) {
        const user = this.attempt?.user ?? this.user;
        // The name is the client's AUTH argument (up to maxRequestBytes), quoted in the reason too:
        // both cut as values are, or one line would be six times its control characters, twice.
        const max = this.s.audit.max;
        const reason = auditValue(errorMessage(err), max);
        this.s.audit.emit('session.denied', { user, dbUser: auditValue(dbUser, max), reason });
      }
      this.attempt = undefined;
      throw err;
    }
  }

  /**
   * The policy changed while the backend logged in: the re-check of live sessions saw this one as it
   * was (or not at all, on its first connect). Decided again now; refused, the session ends, as the
   * re-check would have ended it: its backend connection is already logged in as `dbUser`.
   */
  private decideAgain(identity: Identity, dbUser: string): Allowed {
    const decision = this.s.agent.authorize(identity, dbUser);
    if (decision.allowed) return decision;
    const err = revoked(decision.reason);
    this.s.terminate(err);
    throw err;
  }

  private check(identity: Identity, dbUser: string): Allowed {
    const decision = this.s.agent.authorize(identity, dbUser);
    if (!decision.allowed) {
      throw new DrawbridgeError(
        'ACCESS_DENIED',
        decision.reason,
        'ask an admin for an AccessRole allowing this database user, or AUTH as one you are allowed',
      );
    }
    return decision;
  }

  private async backendLogin(dbUser: string, clientPassword: string | undefined): Promise<BackendLogin> {
    const agent = this.s.agent;
    const credential = await agent.credentials().get({ database: agent.state.database, dbUser });
    if (credential.kind !== 'passthrough') return { credential };
    if (clientPassword === undefined && dbUser !== 'default') {
      throw new DrawbridgeError(
        'AUTHN_FAILED',
        `passthrough auth forwards the client's own AUTH password, and none was given for "${dbUser}"`,
        'connect with a client certificate and AUTH <db-user> <database password>',
      );
    }
    return { credential, clientPassword };
  }

  private async open(login: BackendLogin, protocol: RespVersion | undefined): Promise<void> {
    const { state, log } = this.s.agent;
    const database = state.database;
    const addr = backendAddress(database.spec);
    const connect = { database, secrets: state, login };
    const facts = await backendFacts(`${addr.host}:${addr.port}`, connect, addr.cluster);
    const mode = addr.cluster || facts.clusterEnabled ? 'cluster' : 'standalone';
    const agent = this.s.agent;
    const renew = (dbUser: string) => agent.credentials().get({ database: agent.state.database, dbUser });
    const metrics = agent.metrics;
    const opts = { ...connect, log, sessionId: this.s.id, renew, metrics, protocol };
    const router = await this.s.openRouter(mode, opts);
    this.s.attach(router, facts, mode === 'cluster');
  }

  /** Moves the session's connection slot to `identity`; over its limit the session ends. */
  private async admit(identity: Identity): Promise<void> {
    if (this.claimed?.user === identity.user) return;
    try {
      await this.s.agent.claimIdentity(identity, this.s.client);
    } catch (err) {
      this.s.terminate(err as DrawbridgeError);
      throw err;
    }
    if (this.ended) {
      // The client left while the slot was on its way: nothing holds it, nothing is committed.
      this.s.agent.releaseIdentity(identity);
      throw new DrawbridgeError('PROTOCOL_ERROR', 'the connection closed during login');
    }
    if (this.claimed) this.s.agent.releaseIdentity(this.claimed);
    this.claimed = identity;
    clearTimeout(this.deadline);
    this.s.authenticated();
  }

  /** `since`: the registry's policy changes when `decision` was made. */
  private async commit(
    identity: Identity,
    dbUser: string,
    decision: Allowed,
    login: BackendLogin,
    since: number,
  ): Promise<void> {
    await this.admit(identity);
    if (this.s.agent.sessions.changes !== since) decision = this.decideAgain(identity, dbUser);
    const first = this.decision === undefined;
    this.attempt = undefined;
    this.current = identity;
    this.dbUser = dbUser;
    this.decision = decision;
    this.backend = login;
    this.s.commands.regrant(decision);
    // Re-added so the TTL follows the roles of the current user.
    this.s.agent.sessions.release(this.s.id);
    this.s.agent.sessions.add(this.s, decision.ttlMs);
    if (first) {
      this.s.started({
        reason: decision.reason,
        identitySource: identity.source,
        groups: identity.groups,
        backendUser: login.credential.user,
        clientAddress: this.client.clientAddress,
      });
    }
  }
}

function trackingSwitch(trackingUser: string, user: string): DrawbridgeError {
  return new DrawbridgeError(
    'ACCESS_DENIED',
    `AUTH as database user "${user}" is refused while CLIENT TRACKING is on: it tracks keys "${trackingUser}" may read, and Redis would go on sending their invalidations`,
    'send CLIENT TRACKING OFF first, then AUTH',
  );
}
