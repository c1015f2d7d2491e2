// One client connection, after TLS. Each command is parsed, checked and audited here, then handed to
// the router; replies go back in command order. AUTH, HELLO, QUIT and RESET are answered (or
// completed) by the agent because they change who the session is; everything else is relayed as the
// exact bytes the client sent.
import type { TLSSocket } from 'node:tls';
import { AuditHold } from '../../agent/audit-hold.js';
import { type LiveSession, newSessionId } from '../../agent/sessions.js';
import { certificateIdentity } from '../../agent/tls.js';
import type { Identity } from '../../authn/identity.js';
import { type CommandDenial, CommandPolicy } from '../../authz/commands.js';
import type { AccessRequest, Decision } from '../../authz/engine.js';
import { DrawbridgeError } from '../../errors.js';
import type { AgentRuntime } from '../../agent/engine.js';
import { auditArgs } from './audit.js';
import { databaseIndex } from './backend-auth.js';
import { ClientOutput, type OutputOwner } from './client-output.js';
import { type BackendFacts, unknownCommandReply } from './command-catalog.js';
import { type CommandGuard, type GuardContext, STANDALONE_SCRIPT_LIMIT, dbGuards } from './db-boundary.js';
import { type RedisCommand, RequestParser, agentCommand } from './parser.js';
import { ReplyQueue } from './reply-queue.js';
import { type OpenRouter, RedisReplyError, type Router } from './router.js';
import { EXECABORT, drawbridgeErrorReply, errorReply } from './serializer.js';
import type { RespVersion } from './serializer.js';
import { SessionAudit } from './session-audit.js';
import { SessionLogin } from './session-login.js';
import { localCommand } from './local-commands.js';
import { trackingGuard } from './tracking.js';

type Allowed = Extract<Decision, { allowed: true }>;

/** A local command's hooks around its relay: `relayed` once it is dispatched, `translate` on its reply. */
export interface RelayHooks {
  relayed?: () => void;
  translate?: (reply: Buffer) => Buffer;
}

const DISCARD = agentCommand(['DISCARD']);

export class RedisSession implements LiveSession, OutputOwner, GuardContext {
  readonly id = newSessionId();
  readonly replies: ReplyQueue;
  readonly login: SessionLogin;
  readonly audit = new SessionAudit(this);
  private readonly parser: RequestParser;
  private readonly output: ClientOutput;
  private router: Router | undefined;
  private facts: BackendFacts | undefined;
  private cluster = false;
  private policy: CommandPolicy<CommandGuard> | undefined;
  // Commands that arrived while an AUTH or a backend connect was in progress, run in order after it.
  private queue: RedisCommand[] = [];
  private queueHead = 0;
  private busy = false;
  private backendFull = false;
  private auditHold: AuditHold | undefined;
  inMulti = false;
  /** RESP3 from the HELLO 3 relayed (reverted if the backend refuses it) until HELLO 2 or RESET. */
  protocol: RespVersion = 2;
  trackingUser: string | undefined;
  private multiDirty = false;
  private closing = false;
  /** Malformed input: reported after the replies of every command received before it. */
  private failure: DrawbridgeError | undefined;
  private startedAt = 0;
  private commands = 0;
  private denied = 0;
  private fromClient = 0;

  constructor(
    readonly client: TLSSocket,
    readonly agent: AgentRuntime,
    clientAddress: string,
    /** When the client connected (Date.now()): session setup time is measured from here. */
    readonly openedAt: number,
    /** The engine's routers (shared by the agent's sessions). */
    readonly openRouter: OpenRouter,
  ) {
    this.replies = new ReplyQueue(client, agent.metrics.commandDuration.seriesFor('redis'));
    this.output = new ClientOutput(this);
    let certificate: Identity | undefined;
    let certError: DrawbridgeError | undefined;
    try {
      certificate = certificateIdentity(client);
    } catch (err) {
      certError = err as DrawbridgeError;
    }
    // A valid client certificate authenticates at once; anyone else gets Redis's pre-AUTH limits.
    const max = agent.limits.maxRequestBytes;
    this.parser = new RequestParser(
      (cmd) => this.onCommand(cmd),
      certificate ? { maxBulk: max, maxCommand: max } : { unauthenticated: true },
    );
    this.login = new SessionLogin(this, { certificate, certError, clientAddress });
  }

  get identity(): Identity {
    return this.login.identity;
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
      this.parse(chunk);
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
    if (this.busy || this.queueHead < this.queue.length) this.queue.push(cmd);
    else this.handle(cmd);
  }

  private handle(cmd: RedisCommand): void {
    if (this.closing) return;
    const local = localCommand(cmd.name);
    if (local) local(this, cmd);
    else this.forward(cmd);
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

  /** Authorizes, audits and relays one command (connecting to the backend first if needed). */
  forward(cmd: RedisCommand, hooks?: RelayHooks): void {
    if (!this.router || !this.facts || !this.policy) {
      this.runExclusive(async () => {
        await this.login.connect();
        this.forward(cmd, hooks);
      });
      return;
    }
    const info = this.facts.commands.get(cmd.name);
    if (info === undefined) return this.reject(cmd, unknownCommandReply(cmd, this.facts), 'unknown command');
    const verdict = this.policy.check(info);
    if (!verdict.allowed) return this.deny(cmd, verdict.reason, verdict.rule);
    const guarded = verdict.guard?.(cmd, this);
    if (guarded === undefined) return this.relay(cmd, hooks);
    if ('refuse' in guarded) return this.deny(cmd, guarded.refuse, 'arguments');
    if ('answer' in guarded) {
      this.commands++;
      this.audit.command(cmd);
      return void this.replies.push(guarded.answer);
    }
    this.runExclusive(async () => {
      const refusal = await guarded.check();
      if (refusal === undefined) this.relay(cmd, hooks);
      else this.deny(cmd, refusal, 'arguments');
    });
  }

  /** An allowed command: audited, then dispatched. */
  private relay(cmd: RedisCommand, hooks: RelayHooks | undefined): void {
    this.commands++;
    this.audit.command(cmd);
    if (this.inMulti || cmd.name === 'multi') {
      if (cmd.name === 'exec' && this.multiDirty) return this.abortExec();
      this.trackTransaction(cmd.name);
    }
    if (hooks === undefined) return this.dispatch(cmd);
    hooks.relayed?.();
    this.dispatch(cmd, hooks.translate);
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
    const ok = this.router!.dispatch(cmd, (reply) => {
      const bytes = Buffer.isBuffer(reply) ? reply : errorReply(reply.prefix, reply.message);
      this.replies.fill(seq, translate ? translate(bytes) : bytes);
      this.output.replied();
    });
    if (!ok && !this.backendFull) {
      this.backendFull = true;
      this.client.pause();
    }
  }

  private deny(cmd: RedisCommand, reason: string, rule: CommandDenial): void {
    this.agent.metrics.deniedTotal.inc({ protocol: 'redis', level: 'command', reason: rule });
    this.reject(cmd, errorReply('NOPERM', `drawbridge: ${reason}`), reason);
  }

  private reject(cmd: RedisCommand, reply: Buffer, reason: string): void {
    this.denied++;
    if (this.inMulti) this.multiDirty = true;
    this.audit.emit('command.denied', { command: cmd.name, args: auditArgs(cmd, this.audit.max), reason });
    this.replies.push(reply);
  }

  private trackTransaction(name: string): void {
    if (name === 'multi') this.inMulti = true;
    else if (name === 'exec' || name === 'discard') this.endTransaction();
  }

  /** EXEC, DISCARD or RESET: no transaction, and nothing of the last one taints the next. */
  endTransaction(): void {
    this.inMulti = false;
    this.multiDirty = false;
  }

  /** Like Redis after a queueing error: EXEC discards the transaction and answers EXECABORT. */
  private abortExec(): void {
    this.endTransaction();
    this.dispatch(DISCARD, () => EXECABORT);
  }

  /** A command the agent refuses inside MULTI taints the transaction, as a queueing error does. */
  refuseInMulti(reply: Buffer): void {
    if (this.inMulti) this.multiDirty = true;
    this.replies.push(reply);
  }

  /** Called by SessionLogin once a router is connected for the session's login. */
  attach(router: Router, facts: BackendFacts, cluster: boolean): void {
    if (this.closing) {
      // The client left while the backend connection was being made.
      void router.close();
      throw new DrawbridgeError('PROTOCOL_ERROR', 'the client disconnected during login');
    }
    this.router = router;
    this.facts = facts;
    this.cluster = cluster;
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
    router.onFailure((err) => this.terminate(err));
  }

  resumeClient(): void {
    if (this.busy || this.backendFull || this.closing || this.failure || this.output.readsPaused) return;
    this.client.resume();
  }

  get connected(): Router | undefined {
    return this.router;
  }

  /** A new grant (login, user switch, policy change): command rules are rebuilt from it. */
  regrant(decision: Allowed): void {
    const database = this.agent.state.database;
    const db = this.cluster ? 0 : databaseIndex(database);
    // CLIENT TRACKING's refusals (RESP2, REDIRECT, BCAST outside the user's keys) hold in both modes.
    const guards = new Map<string, CommandGuard>(dbGuards(db, this.cluster));
    guards.set('client|tracking', trackingGuard);
    this.policy = new CommandPolicy(decision.roles, decision.allowedBy, database, {
      scriptLimit: this.cluster ? undefined : STANDALONE_SCRIPT_LIMIT,
      guards,
    });
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
    if (err.code === 'MESSAGE_TOO_LARGE') {
      const limit = this.login.authenticated ? 'maxRequestBytes' : 'unauthenticatedRequest';
      this.agent.limitExceeded(limit, { sessionId: this.id, reason: err.message });
    } else {
      this.agent.log.info(
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
    this.client.end();
    setTimeout(() => this.client.destroy(), 1000).unref();
    this.agent.sessions.release(this.id);
    if (started) {
      this.agent.metrics.sessionsActive.dec({ protocol: 'redis' });
      const bytes = this.agent.metrics.bytesTotal;
      bytes.inc({ protocol: 'redis', direction: 'from_client' }, this.fromClient);
      bytes.inc({ protocol: 'redis', direction: 'to_client' }, this.replies.bytesWritten);
      this.audit.emit('session.end', { reason, durationMs, commands: this.commands, denied: this.denied });
    }
    await this.router?.close();
  }

  /** The session is established (first successful login): tracked, counted, audited. */
  started(fields: Record<string, unknown>): void {
    this.startedAt = Date.now();
    this.agent.metrics.sessionOutcome('redis', 'established', this.openedAt);
    this.agent.metrics.sessionsActive.inc({ protocol: 'redis' });
    this.audit.emit('session.start', fields);
  }

  errorBytes(err: unknown): Buffer {
    if (err instanceof RedisReplyError) return errorReply(err.prefix, err.message);
    if (err instanceof DrawbridgeError) return drawbridgeErrorReply(err);
    this.agent.log.error({ sessionId: this.id, err }, 'unexpected error in redis session');
    return errorReply('ERR', 'internal error in the drawbridge agent (logged)');
  }
}
