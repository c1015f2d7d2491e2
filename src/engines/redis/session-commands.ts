// A Redis session's command path, for every command the agent does not answer itself
// (local-commands.ts): authorized against the session's grant, checked by the engine's argument
// guards, audited, then dispatched; a refused one is answered here. MULTI is followed so that a
// refusal inside a transaction makes its EXEC abort, as a queueing error does in Redis. A command
// decided under one grant but run after a policy change (after a guard's backend check, queued in
// MULTI, behind a blocking command) is decided again under the new one.
import { auditOverflow } from '../../agent/audit-hold.js';
import {
  type CommandDecision,
  type CommandDenial,
  CommandPolicy,
  grantsServerWide,
} from '../../authz/commands.js';
import type { Decision } from '../../authz/engine.js';
import { auditArgs } from './audit.js';
import { databaseIndex } from './backend-auth.js';
import { type BackendFacts, unknownCommandReply } from './command-catalog.js';
import {
  type CommandGuard,
  type GuardCheck,
  CLUSTER_SCRIPT_LIMIT,
  CLUSTER_SERVER_WIDE,
  CLUSTER_SERVER_WIDE_LIMIT,
  STANDALONE_SCRIPT_LIMIT,
  STANDALONE_SERVER_WIDE,
  STANDALONE_SHARED_CODE,
  dbGuards,
  serverWideLimit,
} from './db-boundary.js';
import { OtherDbChannels } from './keyspace-channels.js';
import { type RedisCommand, agentCommand, owned } from './parser.js';
import { PatternBound } from './pubsub-patterns.js';
import { EXECABORT, type RespVersion, drawbridgeErrorReply, errorReply } from './serializer.js';
import type { RedisSession } from './session.js';
import { trackingGuard } from './tracking.js';

type Allowed = Extract<Decision, { allowed: true }>;

/**
 * A local command's hooks around its relay: `relayed` once it is dispatched, `translate` on its
 * reply; `protocol`: the one HELLO switches to, for a router the relay has to open first.
 */
export interface RelayHooks {
  relayed?: () => void;
  translate?: (reply: Buffer) => Buffer;
  protocol?: RespVersion;
}

const DISCARD = agentCommand(['DISCARD']);
/** The mark of a blocking command (never called: forward relays it with relayBlocking). */
const BLOCKS: CommandGuard = () => undefined;
/** The mark of a command that subscribes (never called: forward relays it with relaySubscribe). */
const SUBSCRIBES: CommandGuard = () => undefined;
/** The mark of PUNSUBSCRIBE (never called: forward relays it with relayPunsubscribe). */
const PUNSUBSCRIBES: CommandGuard = () => undefined;
/** The mark of PUBLISH on a standalone server without allow.redisServerWide (relayPublish). */
const PUBLISHES: CommandGuard = () => undefined;
/** What leaves a session hearing messages no command asks for (MONITOR stays refused on a server). */
const SUBSCRIBING = ['subscribe', 'psubscribe', 'ssubscribe'];
/**
 * Commands that hold the session's later commands on the server without being @blocking: WAIT and
 * WAITAOF return at a timeout the client chooses (no replica acknowledging), and Redis runs what
 * was pipelined behind them only then.
 */
const WAITS = ['wait', 'waitaof'];
/** What a session with CLIENT TRACKING on needs to keep it (refusedStanding). */
const TRACKING = ['client|tracking'];

type CommandDenied = Extract<CommandDecision, { allowed: false }>;

export class SessionCommands {
  private facts: BackendFacts | undefined;
  private cluster = false;
  private policy: CommandPolicy<CommandGuard> | undefined;
  // The last command name decided and its decision: a pipeline repeats its command, and comparing
  // the same interned name costs less than the policy's Map lookup.
  private lastName = '';
  private lastVerdict: CommandDecision<CommandGuard> | undefined;
  inMulti = false;
  private multiDirty = false;
  // The open transaction's queued command names (each run once in a row), and the registry's policy
  // changes when MULTI opened: EXEC runs them after any change made meanwhile (checkQueued).
  private readonly queued: string[] = [];
  private multiSince = 0;
  // The reply number of the last blocking command relayed (-1: none waiting), and the names of the
  // blocking commands waiting and of the commands relayed behind them (each once in a row). They run
  // once it returns, whenever that is, under the grant they were decided with: refusedBehindBlocking.
  // (A standalone server queues them behind it; a cluster router holds them, a blocking command is
  // one of its barriers.)
  private blockedSeq = -1;
  private readonly behind: string[] = [];
  // The subscribing commands relayed: their messages keep coming, under the grant they were decided
  // with, while the session listens (refusedStanding).
  private readonly subscribedWith: string[] = [];
  // Standalone: other DBs' keyspace notification channels, refused without allow.redisServerWide, and
  // the subscribing command that reached them under it (refusedStanding).
  private otherDbs: OtherDbChannels | undefined;
  private wideGranted = false;
  private wideSubscription: string | undefined;
  /** The patterns the session's relayed commands hold (limits.maxPubSubPatterns); RESET clears them. */
  readonly patterns = new PatternBound();
  /** Commands relayed or answered, and commands refused (session.end counts them). */
  relayed = 0;
  denied = 0;

  constructor(private readonly s: RedisSession) {}

  /** The backend's commands, once the session's router is connected. */
  attach(facts: BackendFacts, cluster: boolean): void {
    this.facts = facts;
    this.cluster = cluster;
  }

  /** A new grant (login, user switch, policy change): command rules are rebuilt from it. */
  regrant(decision: Allowed): void {
    const database = this.s.agent.state.database;
    const db = this.cluster ? 0 : databaseIndex(database);
    const granted = grantsServerWide(decision.allowedBy);
    // A cluster has no other DBs: its guards, PUBLISH and keyspace channels are the standalone ones
    // granted; only what moves the agent's connections (CLUSTER_SERVER_WIDE) waits for the grant.
    const wide = this.cluster || granted;
    // CLIENT TRACKING's refusals (RESP2, REDIRECT, BCAST outside the user's keys) hold in both modes.
    const guards = new Map<string, CommandGuard>(dbGuards(db, this.cluster, wide));
    guards.set('client|tracking', trackingGuard);
    for (const info of this.facts!.commands.values()) {
      if (info.categories.includes('blocking') && !guards.has(info.name)) guards.set(info.name, BLOCKS);
    }
    for (const name of WAITS) guards.set(name, BLOCKS);
    for (const name of SUBSCRIBING) guards.set(name, SUBSCRIBES);
    guards.set('punsubscribe', PUNSUBSCRIBES);
    this.otherDbs = this.cluster ? undefined : new OtherDbChannels(db, serverWideLimit(db));
    if (!wide) guards.set('publish', PUBLISHES);
    const standalone = !this.cluster;
    this.policy = new CommandPolicy(decision.roles, decision.allowedBy, database, {
      scriptLimit: standalone ? STANDALONE_SCRIPT_LIMIT : granted ? undefined : CLUSTER_SCRIPT_LIMIT,
      sharedCode: standalone ? STANDALONE_SHARED_CODE : undefined,
      serverWide: standalone
        ? { commands: STANDALONE_SERVER_WIDE, limit: serverWideLimit(db) }
        : { commands: CLUSTER_SERVER_WIDE, limit: CLUSTER_SERVER_WIDE_LIMIT },
      guards,
    });
    this.wideGranted = wide;
    this.lastVerdict = undefined;
  }

  /**
   * Authorizes, audits and relays one command (connecting to the backend first if needed). The steps
   * that wait are closures of their own methods: a closure made here, even on a path taken once per
   * session, would have every call allocate the variables it captures.
   */
  forward(cmd: RedisCommand, hooks?: RelayHooks): void {
    const s = this.s;
    if (!this.facts || !this.policy) return this.connectThenForward(owned(cmd), hooks);
    // A name decided before is one the backend has (its catalog does not change within a session).
    let verdict = cmd.name === this.lastName ? this.lastVerdict : this.policy.decided(cmd.name);
    if (verdict === undefined) {
      const info = this.facts.commands.get(cmd.name);
      if (info === undefined)
        return this.reject(cmd, unknownCommandReply(cmd, this.facts), 'unknown command');
      verdict = this.policy.check(info);
    }
    this.lastName = cmd.name;
    this.lastVerdict = verdict;
    if (!verdict.allowed) return this.deny(cmd, verdict.reason, verdict.rule);
    if (verdict.guard === undefined) return this.relay(cmd, hooks);
    if (verdict.guard === BLOCKS) return this.relayBlocking(cmd, hooks);
    if (verdict.guard === SUBSCRIBES) return this.relaySubscribe(cmd, hooks);
    if (verdict.guard === PUNSUBSCRIBES) return this.relayPunsubscribe(cmd, hooks);
    if (verdict.guard === PUBLISHES) return this.relayPublish(cmd, hooks);
    // A guard may keep its command (an async check, the tracking request it parsed): one of its own.
    cmd = owned(cmd);
    const guarded = verdict.guard(cmd, s);
    if (guarded === undefined) return this.relay(cmd, hooks);
    if ('refuse' in guarded) return this.deny(cmd, guarded.refuse, guarded.rule ?? 'arguments');
    if ('check' in guarded) return this.checkThenRelay(cmd, guarded, hooks);
    if ('translate' in guarded) return this.relay(cmd, { ...hooks, translate: guarded.translate });
    if (!s.audit.command(cmd)) return s.terminate(auditOverflow());
    this.relayed++;
    s.replies.push(guarded.answer);
  }

  private connectThenForward(cmd: RedisCommand, hooks: RelayHooks | undefined): void {
    this.s.runExclusive(async () => {
      await this.s.login.connect(hooks?.protocol);
      this.forward(cmd, hooks);
    });
  }

  /**
   * A guard asks the backend first (commands after it wait): then refuses, or relays. A policy change
   * that came meanwhile regranted or ended the session after the command was decided: it is decided
   * again (or dropped, the session over), as one sent after the change would be.
   */
  private checkThenRelay(cmd: RedisCommand, guarded: GuardCheck, hooks: RelayHooks | undefined): void {
    const since = this.s.agent.sessions.changes;
    this.s.runExclusive(async () => {
      const refusal = await guarded.check();
      if (this.s.agent.sessions.changes !== since && !this.stillAllowed(cmd)) return;
      if (refusal !== undefined) return this.deny(cmd, refusal, 'arguments');
      guarded.passed?.();
      const translate = guarded.translate;
      this.relay(cmd, translate ? { ...hooks, translate } : hooks);
    });
  }

  /** Decides `cmd` again under the session's grant now; refused (or the session ended), it is not run. */
  private stillAllowed(cmd: RedisCommand): boolean {
    if (this.s.ended) return false;
    const verdict = this.verdictOf(cmd.name);
    if (verdict.allowed) return true;
    this.deny(cmd, verdict.reason, verdict.rule);
    return false;
  }

  /** The grant's decision on a command the backend has (one relayed before, or just decided). */
  private verdictOf(name: string): CommandDecision<CommandGuard> {
    return this.policy!.decided(name) ?? this.policy!.check(this.facts!.commands.get(name)!);
  }

  /**
   * A blocking command: it runs (pops, reads) when it returns, and what is relayed after it waits
   * until then.
   */
  private relayBlocking(cmd: RedisCommand, hooks: RelayHooks | undefined): void {
    this.relay(cmd, hooks);
    // Queued in a transaction it blocks nothing.
    if (this.inMulti) return;
    // Behind another blocking command, relay noted it already.
    if (this.blockedSeq < 0) this.behind.push(cmd.name);
    this.blockedSeq = this.s.replies.lastReserved;
  }

  /**
   * A subscribing command: its messages keep coming until unsubscribed. On a standalone server, one
   * that would hear another DB's keyspace notifications needs allow.redisServerWide.
   */
  private relaySubscribe(cmd: RedisCommand, hooks: RelayHooks | undefined): void {
    const other = this.otherDbs?.subscribed(cmd);
    if (other !== undefined) {
      if (!this.wideGranted)
        return this.deny(cmd, this.otherDbs!.subscribeRefusal(cmd, other), 'server_wide');
      this.wideSubscription ??= cmd.name;
    }
    if (cmd.name === 'psubscribe') {
      const refused = this.patterns.subscribe(cmd.args.slice(1), this.s.agent.limits.maxPubSubPatterns);
      if (refused !== undefined) {
        this.s.agent.limitExceeded('maxPubSubPatterns', {
          sessionId: this.s.id,
          patterns: this.patterns.size,
        });
        return this.reject(cmd, drawbridgeErrorReply(refused), refused.message);
      }
    }
    if (!this.subscribedWith.includes(cmd.name)) this.subscribedWith.push(cmd.name);
    this.relay(cmd, hooks);
  }

  /** PUNSUBSCRIBE frees the session's patterns (pubsub-patterns.ts) as it is relayed. */
  private relayPunsubscribe(cmd: RedisCommand, hooks: RelayHooks | undefined): void {
    this.patterns.unsubscribe(cmd.args.slice(1));
    this.relay(cmd, hooks);
  }

  /** PUBLISH without allow.redisServerWide: not to another DB's notification channel (a forged event). */
  private relayPublish(cmd: RedisCommand, hooks: RelayHooks | undefined): void {
    const refusal = this.otherDbs!.publishRefusal(cmd);
    if (refusal !== undefined) return this.deny(cmd, refusal, 'server_wide');
    this.relay(cmd, hooks);
  }

  /**
   * After a policy change: why the session must end, if the grant now refuses a command still acting
   * (closing its connections drops it): one waiting behind a blocking command (or that one), the
   * subscription the session still listens on, or the CLIENT TRACKING still on.
   */
  refusedStanding(): string | undefined {
    if (this.blockedSeq >= 0 && this.stillBlocked()) {
      const refused = this.firstRefused(this.behind);
      if (refused !== undefined) {
        const [name, verdict] = refused;
        return `"${name}" still waits on the server (a blocking command, or behind one) and is refused now: ${verdict.reason}`;
      }
    }
    if (this.subscribedWith.length > 0 && this.s.connected?.listening) {
      const refused = this.firstRefused(this.subscribedWith);
      if (refused !== undefined) {
        const [name, verdict] = refused;
        return `the session still listens on what "${name}" subscribed to, which is refused now: ${verdict.reason}`;
      }
    }
    // (Counted from the subscribing command on, while the session listens to anything.)
    if (this.wideSubscription !== undefined && !this.wideGranted && this.s.connected?.listening) {
      return `the session still listens on another DB's keyspace notifications ("${this.wideSubscription}" under allow.redisServerWide), which no role grants now`;
    }
    if (this.s.trackingUser !== undefined) {
      const refused = this.firstRefused(TRACKING);
      if (refused !== undefined)
        return `CLIENT TRACKING is still on, which is refused now: ${refused[1].reason}`;
    }
    return undefined;
  }

  /** Whether the last blocking command has not returned yet (if it has, nothing waits behind it). */
  private stillBlocked(): boolean {
    if (!this.s.replies.answered(this.blockedSeq)) return true;
    this.blockedSeq = -1;
    this.behind.length = 0;
    return false;
  }

  /** The first of `names` the grant now refuses, with its verdict; each refusal is counted. */
  private firstRefused(names: readonly string[]): [string, CommandDenied] | undefined {
    for (const name of names) {
      const verdict = this.verdictOf(name);
      if (verdict.allowed) continue;
      this.s.agent.metrics.deniedTotal.inc({ protocol: 'redis', level: 'command', reason: verdict.rule });
      return [name, verdict];
    }
    return undefined;
  }

  /** An allowed command: audited, then dispatched. */
  private relay(cmd: RedisCommand, hooks: RelayHooks | undefined): void {
    if (this.inMulti && cmd.name === 'exec' && this.s.agent.sessions.changes !== this.multiSince) {
      if (!this.checkQueued(cmd)) return;
    }
    if (this.blockedSeq >= 0 && this.stillBlocked() && cmd.name !== this.behind[this.behind.length - 1]) {
      this.behind.push(cmd.name);
    }
    if (!this.s.audit.command(cmd)) return this.s.terminate(auditOverflow());
    this.relayed++;
    if (this.inMulti || cmd.name === 'multi') {
      if (cmd.name === 'exec' && this.multiDirty) return this.abortExec();
      this.trackTransaction(cmd.name);
    }
    if (hooks === undefined) return this.s.dispatch(cmd);
    hooks.relayed?.();
    this.s.dispatch(cmd, hooks.translate);
  }

  private deny(cmd: RedisCommand, reason: string, rule: CommandDenial): void {
    this.s.agent.metrics.deniedTotal.inc({ protocol: 'redis', level: 'command', reason: rule });
    this.reject(cmd, errorReply('NOPERM', `drawbridge: ${reason}`), reason);
  }

  private reject(cmd: RedisCommand, reply: Buffer, reason: string): void {
    this.denied++;
    if (this.inMulti) this.multiDirty = true;
    const audit = this.s.audit;
    audit.emit('command.denied', { command: cmd.name, args: auditArgs(cmd, audit.max), reason });
    this.s.replies.push(reply);
  }

  private trackTransaction(name: string): void {
    if (name === 'exec' || name === 'discard') return this.endTransaction();
    // A nested MULTI is the backend's error: the transaction and its queue stay as they are.
    if (!this.inMulti) {
      this.inMulti = true;
      this.multiSince = this.s.agent.sessions.changes;
    } else if (name !== 'multi' && name !== this.queued[this.queued.length - 1]) this.queued.push(name);
  }

  /**
   * EXEC after a policy change: its commands were decided when they were queued, under the grant of
   * then. Each is decided again; one refused now discards the transaction, nothing of it runs.
   */
  private checkQueued(exec: RedisCommand): boolean {
    const refused = this.firstRefused(this.queued);
    if (refused === undefined) return true;
    const [name, verdict] = refused;
    const reason = `the transaction's "${name}" is refused since it was queued: ${verdict.reason}`;
    this.denied++;
    const audit = this.s.audit;
    audit.emit('command.denied', { command: exec.name, args: auditArgs(exec, audit.max), reason });
    const reply = errorReply('EXECABORT', `drawbridge: Transaction discarded: ${reason}`);
    this.endTransaction();
    this.s.dispatch(DISCARD, () => reply);
    return false;
  }

  /** EXEC, DISCARD or RESET: no transaction, and nothing of the last one taints the next. */
  endTransaction(): void {
    this.inMulti = false;
    this.multiDirty = false;
    this.queued.length = 0;
  }

  /** Like Redis after a queueing error: EXEC discards the transaction and answers EXECABORT. */
  private abortExec(): void {
    this.endTransaction();
    this.s.dispatch(DISCARD, () => EXECABORT);
  }

  /** A command the agent refuses inside MULTI taints the transaction, as a queueing error does. */
  refuseInMulti(reply: Buffer): void {
    if (this.inMulti) this.multiDirty = true;
    this.s.replies.push(reply);
  }
}
