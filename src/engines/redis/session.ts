// One client connection, after TLS. Each command is parsed here, checked and audited
// (session-commands.ts), then handed to the router; replies go back in command order. AUTH, HELLO,
// QUIT and RESET are answered (or completed) by the agent because they change who the session is;
// everything else is relayed as the exact bytes the client sent.
import type { TLSSocket } from 'node:tls';
import { AuditHold, auditOverflow } from '../../agent/audit-hold.js';
import { type LiveSession, newSessionId, revoked } from '../../agent/sessions.js';
import { limitOf } from '../../agent/limits.js';
import { certificateIdentity } from '../../agent/tls.js';
import type { Identity } from '../../authn/identity.js';
import type { AccessRequest, Decision } from '../../authz/engine.js';
import { DrawbridgeError } from '../../errors.js';
import type { AgentRuntime } from '../../agent/engine.js';
import { ClientOutput, type OutputOwner } from './client-output.js';
import type { BackendFacts } from './command-catalog.js';
import type { GuardContext } from './db-boundary.js';
import { type RedisCommand, RequestParser, owned } from './parser.js';
import { ReplyQueue } from './reply-queue.js';
import { type OpenRouter, RedisReplyError, type Router } from './router.js';
import { drawbridgeErrorReply, errorReply } from './serializer.js';
import type { RespVersion } from './serializer.js';
import { SessionAudit } from './session-audit.js';
import { SessionCommands } from './session-commands.js';
import { SessionLogin } from './session-login.js';
import { type LocalHandler, localCommand } from './local-commands.js';

export class RedisSession implements LiveSession, OutputOwner, GuardContext {
  readonly id = newSessionId();
  readonly replies: ReplyQueue;
  readonly login: SessionLogin;
  readonly audit = new SessionAudit(this);
  readonly commands = new SessionCommands(this);
  private readonly parser: RequestParser;
  private readonly output: ClientOutput;
  private router: Router | undefined;
  // Commands that arrived while an AUTH or a backend connect was in progress, run in order after it.
  private queue: RedisCommand[] = [];
  private queueHead = 0;
  private busy = false;
  private backendFull = false;
  private auditHold: AuditHold | undefined;
  /** RESP3 from the HELLO 3 relayed (reverted if the backend refuses it) until HELLO 2 or RESET. */
  protocol: RespVersion = 2;
  trackingUser: string | undefined;
  private closing = false;
  /** Malformed input: reported after the replies of every command received before it. */
  private failure: DrawbridgeError | undefined;
  private startedAt = 0;
  private fromClient = 0;
  // The last command name looked up among the agent's own and what it found (nearly always none): a
  // pipeline repeats its command, and comparing the same interned name costs less than a Map lookup.
  private localName = '';
  private local: LocalHandler | undefined;

  constructor(
    readonly client: TLSSocket,
    readonly agent: AgentRuntime,
    clientAddress: string,
    /** When the client connected (Date.now()): session setup time is measured from here. */
    readonly openedAt: number,
    /** The engine's routers (shared by the agent's sessions). */
    readonly openRouter: OpenRouter,
  ) {
    this.replies = new ReplyQueue(client, agent.metrics.commandDuration.seriesFor('redis'), (full) =>
      full ? client.pause() : this.resumeClient(),
    );
    this.output = new ClientOutput(this);
    let certificate: Identity | undefined;
    let certError: DrawbridgeError | undefined;
    try {
      certificate = certificateIdentity(client);
    } catch (err) {
      certError = err as DrawbridgeError;
    }
    // A valid client certificate authenticates at once; anyone else gets Redis's pre-AUTH limits.
    // Commands come as the parser's one reused object: what keeps one past onCommand keeps owned(cmd).
    const max = agent.limits.maxRequestBytes;
    this.parser = new RequestParser(
      (cmd) => this.onCommand(cmd),
      certificate ? { maxBulk: max, maxCommand: max, reuse: true } : { unauthenticated: true, reuse: true },
    );
    this.login = new SessionLogin(this, { certificate, certError, clientAddress });
  }

  get identity(): Identity {
    return this.login.identity;
  }

  get inMulti(): boolean {
    return this.commands.inMulti;
  }

  get dbUser(): string {
    return this.login.dbUser;
  }

  request(): AccessRequest {
    return { database: this.agent.state.database, dbUser: this.login.dbUser };
  }

  /** `deadline`: when the client must have authenticated (limits.authTimeout from its first byte). */
  start(deadline: number): void {
    this.client.on('data', (chunk: Buffer) => {
      if (this.failure) return;
      if (this.agent.audit.held) return this.holdForAudit(chunk);
      this.fromClient += chunk.length;
      // The commands of one read leave in one backend write at its end, audited with its time; the
      // replies the agent makes itself (denials, local commands) leave at its end too, not at the
      // end of the turn, when no backend reply is due before them.
      const writes = this.router?.writes;
      writes?.hold();
      this.replies.hold();
      this.audit.readAt = Date.now();
      this.parse(chunk);
      this.audit.readAt = 0;
      writes?.release();
      this.replies.release();
      this.output.read();
    });
    this.client.on('error', (err) =>
      this.agent.log.debug({ sessionId: this.id, err: err.message }, 'client error'),
    );
    this.client.once('close', () => this.close('client disconnected'));
    this.login.begin(deadline);
  }

  /** The client authenticated (SessionLogin): Redis's own limits from now on. */
  authenticated(): void {
    this.parser.authenticated(this.agent.limits.maxRequestBytes);
  }

  /** Required audit mode and the audit log is behind: read nothing more until it catches up. */
  private holdForAudit(chunk: Buffer): void {
    this.auditHold ??= new AuditHold(this.client, this.agent.audit, (err) =>
      err ? this.terminate(err) : this.resumeClient(),
    );
    this.auditHold.hold(chunk);
  }

  private onCommand(cmd: RedisCommand): void {
    if (this.busy || this.queueHead < this.queue.length) this.queue.push(owned(cmd));
    else this.handle(cmd);
  }

  private handle(cmd: RedisCommand): void {
    if (this.closing) return;
    if (cmd.name !== this.localName) {
      this.local = localCommand(cmd.name);
      this.localName = cmd.name;
    }
    const local = this.local;
    // The agent's own commands may keep theirs past this call (AUTH awaits the login, then audits it).
    if (local) local(this, owned(cmd));
    else this.commands.forward(cmd);
  }

  /** Runs an async step (AUTH, backend connect); commands arriving meanwhile wait their turn. */
  runExclusive(step: () => Promise<void>): void {
    this.busy = true;
    this.client.pause();
    if (this.parser.limited) this.parser.stop();
    step()
      .catch((err: unknown) => {
        // A step that ended the session (over a connection limit) has already told the client.
        if (!this.closing) this.replies.push(this.errorBytes(err));
      })
      .finally(() => {
        this.busy = false;
        while (!this.busy && !this.closing && this.queueHead < this.queue.length) {
          this.handle(this.queue[this.queueHead++]!);
        }
        if (this.busy) return;
        this.queue = [];
        this.queueHead = 0;
        if (this.failure) return this.failNow(this.failure);
        this.parse(undefined);
        this.resumeClient();
      });
  }

  /** Parses `chunk`, or (undefined) what a step before login left unparsed: with its outcome's limits. */
  private parse(chunk: Buffer | undefined): void {
    try {
      if (chunk) this.parser.feed(chunk);
      else this.parser.resume();
    } catch (err) {
      this.protocolFailure(err as DrawbridgeError);
    }
  }

  /** Sends `cmd` after everything dispatched so far, for the agent's own use: its reply is not relayed. */
  ask(cmd: RedisCommand): Promise<Buffer> {
    return new Promise((resolve) => {
      this.router!.dispatch(cmd, (reply) =>
        resolve(Buffer.isBuffer(reply) ? reply : errorReply(reply.prefix, reply.message)),
      );
    });
  }

  /** Hands a command to the router; its reply takes the next place in the reply order. */
  dispatch(cmd: RedisCommand, translate?: (reply: Buffer) => Buffer): void {
    const seq = this.replies.reserve();
    const router = this.router!;
    if (!router.borrowsCommands) cmd = owned(cmd);
    // The callback is made in a method of its own: made here, every dispatch would allocate what it
    // captures once a session had taken that path (a HELLO).
    const ok =
      router.dispatchSeq && !translate
        ? router.dispatchSeq(cmd, seq)
        : router.dispatch(cmd, this.replyTo(seq, translate));
    if (!ok && !this.backendFull) {
      this.backendFull = true;
      this.client.pause();
    }
  }

  private replyTo(
    seq: number,
    translate?: (reply: Buffer) => Buffer,
  ): (reply: Buffer | RedisReplyError) => void {
    return (reply) => {
      const bytes = Buffer.isBuffer(reply) ? reply : errorReply(reply.prefix, reply.message);
      this.replied(seq, translate ? translate(bytes) : bytes);
    };
  }

  private readonly replied = (seq: number, reply: Buffer, start?: number, end?: number): void => {
    this.replies.fill(seq, reply, start, end);
    this.output.replied();
  };

  /** Called by SessionLogin once a router is connected for the session's login. */
  attach(router: Router, facts: BackendFacts, cluster: boolean): void {
    if (this.closing) {
      // The client left while the backend connection was being made.
      void router.close();
      throw new DrawbridgeError('PROTOCOL_ERROR', 'the client disconnected during login');
    }
    this.router = router;
    this.commands.attach(facts, cluster);
    router.onReply?.(this.replied, this.replies);
    router.onPush((frame) => {
      this.replies.writeNow(frame);
      this.output.pushed();
    });
    router.onPushHeld?.((bytes) => this.output.held(bytes));
    router.onDrain(() => {
      if (!this.backendFull) return;
      this.backendFull = false;
      this.resumeClient();
    });
    router.onFailure((err) => {
      // The router's failures are the backend's, but for the subscriptions this client asked for.
      if (err.code === 'TOO_MANY_SUBSCRIPTIONS') {
        this.agent.limitExceeded('subscriptions', { sessionId: this.id });
      }
      this.terminate(err);
    });
  }

  resumeClient(): void {
    if (
      this.busy ||
      this.backendFull ||
      this.closing ||
      this.failure ||
      this.output.readsPaused ||
      this.replies.full
    )
      return;
    this.client.resume();
  }

  /** The session is over (or closing): nothing more of it is relayed. */
  get ended(): boolean {
    return this.closing;
  }

  get connected(): Router | undefined {
    return this.router;
  }

  /**
   * A policy change still allowing the session (LiveSession): command rules are rebuilt from it. What
   * still acts (behind a blocking command, a subscription, tracking) does so under it, or the session ends.
   */
  regrant(decision: Extract<Decision, { allowed: true }>): void {
    this.commands.regrant(decision);
    const refused = this.commands.refusedStanding();
    if (refused !== undefined) this.terminate(revoked(refused));
  }

  /** Ends the session now, telling the client why. */
  terminate(err: DrawbridgeError): void {
    if (this.closing) return;
    this.replies.writeNow(drawbridgeErrorReply(err));
    void this.close(err.message);
  }

  /** Replies then closes (QUIT, malformed input). */
  closeAfterReplies(reason: string): void {
    this.closing = true;
    this.client.pause();
    this.replies.afterAll(() => void this.close(reason));
    setTimeout(() => this.client.destroy(), 2000).unref();
  }

  private protocolFailure(err: DrawbridgeError): void {
    if (this.closing || this.failure) return;
    this.failure = err;
    this.client.pause();
    if (!this.busy && this.queueHead >= this.queue.length) this.failNow(err);
  }

  private failNow(err: DrawbridgeError): void {
    const limit = limitOf(err.code, this.login.authenticated);
    if (limit) {
      this.agent.limitExceeded(limit, { sessionId: this.id, reason: err.message });
    } else {
      this.agent.clientLog.info(
        { sessionId: this.id, reason: err.message },
        'malformed client input; closing session',
      );
    }
    this.replies.push(this.errorBytes(err));
    this.closeAfterReplies(err.message);
  }

  private async close(reason: string): Promise<void> {
    if (this.startedAt < 0) return;
    const started = this.startedAt > 0;
    const durationMs = started ? Date.now() - this.startedAt : 0;
    this.startedAt = -1;
    this.closing = true;
    this.output.close();
    this.login.end();
    this.replies.flush();
    // A client that closed is gone: end() would only make an error (write after destroy) to drop.
    if (!this.client.destroyed) {
      this.client.end();
      setTimeout(() => this.client.destroy(), 1000).unref();
    }
    this.agent.sessions.release(this.id);
    if (started) {
      this.agent.metrics.sessionsActive.dec({ protocol: 'redis' });
      const bytes = this.agent.metrics.bytesTotal;
      bytes.inc({ protocol: 'redis', direction: 'from_client' }, this.fromClient);
      bytes.inc({ protocol: 'redis', direction: 'to_client' }, this.replies.bytesWritten);
      this.audit.emit('session.end', {
        reason,
        durationMs,
        commands: this.commands.relayed,
        denied: this.commands.denied,
      });
    }
    await this.router?.close();
  }

  /** The session is established (first successful login): tracked, counted, audited. */
  started(fields: Record<string, unknown>): void {
    this.startedAt = Date.now();
    this.agent.metrics.sessionOutcome('redis', 'established', this.openedAt);
    this.agent.metrics.sessionsActive.inc({ protocol: 'redis' });
    if (!this.audit.emit('session.start', fields)) this.terminate(auditOverflow());
  }

  errorBytes(err: unknown): Buffer {
    if (err instanceof RedisReplyError) return errorReply(err.prefix, err.message);
    if (err instanceof DrawbridgeError) return drawbridgeErrorReply(err);
    this.agent.log.error({ sessionId: this.id, err }, 'unexpected error in redis session');
    return errorReply('ERR', 'internal error in the drawbridge agent (logged)');
  }
}
