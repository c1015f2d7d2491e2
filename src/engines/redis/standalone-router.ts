// One backend connection per client session, fully pipelined: commands go out in order as their raw
// bytes, replies come back in order as raw frames. What is not one-reply-per-command is tracked here:
// SUBSCRIBE-family commands answer with one frame per channel, pub/sub messages and MONITOR lines
// answer nothing (pushes), and RESET leaves both modes. After HELLO 3 the connection speaks RESP3:
// pushes are `>` frames, told apart from replies by their type byte whatever the mode, except the
// subscribe-family confirmations, which are pushes too but answer their command.
import type { Socket } from 'node:net';
import type { Database } from '../../api/database.js';
import { DrawbridgeError, errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { BackendCredential } from '../../agent/credentials.js';
import {
  authAttempts,
  authFailure,
  certificateSwitchError,
  connectBackend,
  selectCommand,
  selectFailure,
  WHOAMI,
  whoamiFailure,
} from './backend-auth.js';
import type { RedisCommand } from './parser.js';
import { ReplyFramer, isErrorFrame, isPushFrame } from './reply-parser.js';
import type {
  BackendLogin,
  RedisReplyError,
  ReplyHandler,
  Router,
  RouterOptions,
  Routers,
} from './router.js';
import { PubSubTracker, type SubscriptionKind } from './pubsub-tracker.js';
import { Expect, SPECIAL, isSubscription, joinFrames } from './reply-expect.js';
import { Reauth, type Renew, expiryOf } from './reauth.js';
import { RESET } from './serializer.js';
import { type HeldWrites, WriteBatcher } from './write-batcher.js';

type Done = (reply: Buffer | RedisReplyError) => void;

/** The type bytes of frames that may be pushes: a RESP3 push, or an attribute (before a push or a reply). */
const PUSH = 0x3e; // >
const ATTRIBUTE = 0x7c; // |

export class StandaloneRouter implements Router {
  private readonly framer = ReplyFramer.inPlace((bytes, start, end) => this.onFrameAt(bytes, start, end));
  /** Commands to the backend (the session holds it while it dispatches one client read's). */
  readonly writes: WriteBatcher;
  private replies: HeldWrites | undefined;
  private readonly pubsub = new PubSubTracker();
  // In-flight commands, oldest first, in [head, tail), each answered by its callback or (sent) its
  // sequence number; a head index instead of shift() keeps dequeue O(1). Emptied, the arrays keep
  // their slots (`length = 0` would drop them and every pipeline would grow new ones); a dones slot
  // is cleared once answered, so no callback outlives its command.
  private dones: (Done | number | undefined)[] = [];
  private expects: number[] = [];
  private head = 0;
  private tail = 0;
  private parts: Buffer[] = [];
  private onReplied: ReplyHandler = () => undefined;
  private onPushFrame: (frame: Buffer) => void = () => undefined;
  private onDrained: () => void = () => undefined;
  private onFailed: (err: DrawbridgeError) => void = () => undefined;
  private done = false;
  /** A MULTI was dispatched and no EXEC, DISCARD or RESET after it. */
  private inTransaction = false;
  /** The backend answered HELLO 3 (and no HELLO 2 or RESET since). */
  private resp3 = false;
  // The last command name looked up in SPECIAL and what it found (nearly always nothing): a pipeline
  // repeats its command, and comparing the same interned name costs less than a Map lookup.
  private specialName = '';
  private special: Expect | undefined;
  private readonly reauth: Reauth | undefined;
  private credential: BackendCredential | undefined;

  constructor(
    private readonly socket: Socket,
    private readonly log: Logger,
    /** The database user this connection is logged in as. */
    private user: string,
    /** Where fresh credentials come from when the login's credential expires (IAM tokens). */
    private readonly renew?: Renew,
    /** The session's, for the log line of a failure (a child logger per session costs ~10 µs). */
    private readonly sessionId?: string,
  ) {
    this.reauth =
      renew &&
      new Reauth({
        renew,
        ready: () => this.canReauth(),
        send: (auth) => this.sendReauth(auth),
        fail: (err) => this.fail(err),
      });
    this.writes = new WriteBatcher(socket);
    socket.on('data', (chunk: Buffer) => {
      // The replies of one read leave in one client write at its end.
      this.replies?.hold();
      try {
        this.framer.feed(chunk);
      } catch (err) {
        this.fail(err instanceof DrawbridgeError ? err : lost(errorMessage(err)));
      }
      this.replies?.release();
    });
    socket.on('drain', () => this.onDrained());
    socket.on('error', (err) => this.fail(lost(err.message)));
    // After close() the end is ours: no error to make (a DrawbridgeError per session).
    socket.on('close', () => {
      if (!this.done) this.fail(lost('the backend closed the connection'));
    });
    socket.resume();
  }

  dispatch(cmd: RedisCommand, done: Done): boolean {
    return this.relay(cmd, done);
  }

  dispatchSeq(cmd: RedisCommand, seq: number): boolean {
    return this.relay(cmd, seq);
  }

  readonly borrowsCommands = true;

  private relay(cmd: RedisCommand, done: Done | number): boolean {
    if (cmd.name !== this.specialName) {
      this.special = SPECIAL.get(cmd.name);
      this.specialName = cmd.name;
    }
    const special = this.special;
    const expect = special === undefined ? Expect.OneFrame : this.expectOf(cmd, special);
    // In place in the client's chunk when it is there (no Buffer per command).
    this.enqueue(cmd.bytes ?? cmd.raw, done, expect, cmd.offset, cmd.end);
    return !this.socket.writableNeedDrain;
  }

  private expectOf(cmd: RedisCommand, special: Expect): number {
    const subscription = special === Expect.Subscribe || isSubscription(special);
    // With arguments, each subscription command gets one frame per channel or pattern named.
    if (subscription && cmd.args.length > 1) return cmd.args.length - 1;
    if (special === Expect.Subscribe) return Expect.OneFrame;
    return special <= Expect.Reset ? this.noteTransaction(special) : special;
  }

  /** MULTI opens a transaction; EXEC, DISCARD and RESET end it. */
  private noteTransaction(expect: Expect): Expect {
    if (expect === Expect.Hello) return expect;
    this.inTransaction = expect === Expect.TxStart;
    return expect === Expect.Reset ? expect : Expect.OneFrame;
  }

  /** Re-AUTHs before `credential` expires (rotating credentials such as IAM tokens); else nothing. */
  keepLoggedIn(credential: BackendCredential): void {
    this.credential = credential;
    this.reauth?.arm(credential);
  }

  /** Not while an AUTH would be queued (MULTI) or refused (RESP2 subscribed and MONITOR modes). */
  private canReauth(): boolean {
    if (this.done || this.inTransaction) return false;
    if (this.pubsub.active && (!this.resp3 || this.pubsub.monitoring)) return false;
    // A subscribe-family, MONITOR or RESET command still unanswered may change the mode AUTH meets.
    for (let i = this.head; i < this.tail; i++) {
      if (this.expects[i] !== Expect.OneFrame) return false;
    }
    return true;
  }

  /** The re-AUTH, queued in order with the commands. */
  private sendReauth(auth: Buffer): Promise<Buffer | DrawbridgeError> | undefined {
    if (!this.canReauth()) return undefined;
    return new Promise((resolve) =>
      this.enqueue(auth, (r) => resolve(Buffer.isBuffer(r) ? r : lost(r.message)), Expect.OneFrame),
    );
  }

  /** Sends `raw[start, end)` (all of it by default), answered by `done`. */
  private enqueue(raw: Buffer, done: Done | number, expect: number, start?: number, end?: number): void {
    if (this.tail < this.dones.length) {
      this.dones[this.tail] = done;
      this.expects[this.tail] = expect;
    } else {
      this.dones.push(done);
      this.expects.push(expect);
    }
    this.tail++;
    this.writes.write(raw, start, end);
  }

  /**
   * A frame in place in the backend's chunk. The common one (one frame answering a plain command of
   * the session's, outside pub/sub and MONITOR modes) is handed over as it lies, without a Buffer;
   * every other goes through onFrame.
   */
  private onFrameAt(bytes: Buffer, start: number, end: number): void {
    const done = this.dones[this.head];
    const type = bytes[start];
    if (
      typeof done === 'number' &&
      this.expects[this.head] === Expect.OneFrame &&
      type !== PUSH &&
      type !== ATTRIBUTE &&
      !this.pubsub.active
    ) {
      this.advance();
      this.onReplied(done, bytes, start, end);
    } else {
      this.onFrame(bytes.subarray(start, end));
    }
  }

  private onFrame(frame: Buffer): void {
    const expect = this.head < this.tail ? this.expects[this.head] : undefined;
    if (isPushFrame(frame)) {
      // A RESP3 push; only a subscribe-family confirmation answers a command (the one awaiting it).
      if (!(expect !== undefined && isSubscription(expect) && this.pubsub.isConfirmation(frame))) {
        this.onPushFrame(frame);
        return;
      }
    } else if (this.pubsub.active && this.pubsub.isPush(frame, this.resp3)) {
      // +RESET is the one reply a MONITOR connection still gets (monitor lines are +<timestamp> ...).
      if (!(expect === Expect.Reset && frame.equals(RESET))) {
        this.onPushFrame(frame);
        return;
      }
    }
    const done = this.dones[this.head];
    if (done === undefined) {
      this.fail(lost('the backend sent a reply to no command'));
      return;
    }
    if (expect === Expect.OneFrame) this.complete(done, frame);
    else this.onSpecialFrame(done, expect!, frame);
  }

  private onSpecialFrame(done: Done | number, expect: number, frame: Buffer): void {
    if (expect === Expect.Monitor || expect === Expect.Reset || expect === Expect.Hello) {
      if (expect === Expect.Monitor) this.pubsub.monitorStarted(frame);
      else if (expect === Expect.Reset) {
        this.pubsub.reset(frame);
        if (frame[0] === 0x2b /* + */) this.resp3 = false;
      } else if (frame[0] === 0x25 /* % */ || frame[0] === 0x2a /* * */) {
        // HELLO 3 is answered with a map, HELLO 2 with an array (the protocol just chosen); an error
        // (simple or blob) changes nothing.
        this.resp3 = frame[0] === 0x25;
      }
      this.complete(done, frame);
      return;
    }
    let left = expect > 0 ? expect : this.pubsub.replyCount(-expect as SubscriptionKind);
    this.pubsub.observe(frame);
    // An error (simple, or a RESP3 blob error) answers the whole command, however many frames it would
    // have had.
    left = isErrorFrame(frame) ? 0 : left - 1;
    if (left === 0 && this.parts.length === 0) {
      this.complete(done, frame);
      return;
    }
    this.parts.push(frame);
    this.expects[this.head] = left;
    if (left === 0) {
      const joined = joinFrames(this.parts);
      this.parts = [];
      this.complete(done, joined);
    }
  }

  private complete(done: Done | number, reply: Buffer): void {
    this.advance();
    if (typeof done === 'number') this.onReplied(done, reply);
    else done(reply);
  }

  /** The oldest in-flight command is answered. */
  private advance(): void {
    this.dones[this.head++] = undefined;
    if (this.head === this.tail) {
      this.head = this.tail = 0;
    } else if (this.head >= 4096 && this.head * 2 >= this.tail) {
      this.dones = this.dones.slice(this.head, this.tail);
      this.expects = this.expects.slice(this.head, this.tail);
      this.tail -= this.head;
      this.head = 0;
    }
  }

  onReply(handler: ReplyHandler, replies?: HeldWrites): void {
    this.onReplied = handler;
    this.replies = replies;
  }

  onPush(handler: (frame: Buffer) => void): void {
    this.onPushFrame = handler;
  }

  onDrain(handler: () => void): void {
    this.onDrained = handler;
  }

  onFailure(handler: (err: DrawbridgeError) => void): void {
    this.onFailed = handler;
  }

  async relogin(login: BackendLogin): Promise<void> {
    let failure = certificateSwitchError(this.user, login);
    if (failure) throw failure;
    this.reauth?.cancel();
    for (const auth of authAttempts(login)) {
      const reply = await new Promise<Buffer | RedisReplyError>((resolve) =>
        this.enqueue(auth, resolve, Expect.OneFrame),
      );
      failure = Buffer.isBuffer(reply) ? authFailure(reply, login.credential.user) : lost(reply.message);
      if (!failure) break;
    }
    if (failure) {
      if (this.credential) this.keepLoggedIn(this.credential);
      throw failure;
    }
    this.user = login.credential.user;
    this.keepLoggedIn(login.credential);
  }

  async restore(login: BackendLogin, database: Database): Promise<void> {
    // The session's login may be hours old: a rotating credential in it (an IAM token) no longer AUTHs.
    const rotating = this.renew && expiryOf(login.credential) !== undefined;
    await this.relogin(rotating ? { credential: await this.renew!(login.credential.user) } : login);
    // mtls has no AUTH to send: RESET left the connection as `default`, which must be the mapped user.
    if (login.credential.kind === 'certificate') {
      const user = login.credential.user;
      await this.ask(WHOAMI, (frame) => whoamiFailure(frame, user));
    }
    const select = selectCommand(database);
    if (select) await this.ask(select, (frame) => selectFailure(frame, database));
  }

  /** Sends `command` in order with the others; rejects with what `failure` finds in its reply. */
  private async ask(command: Buffer, failure: (frame: Buffer) => DrawbridgeError | undefined): Promise<void> {
    const reply = await new Promise<Buffer | RedisReplyError>((resolve) =>
      this.enqueue(command, resolve, Expect.OneFrame),
    );
    const err = Buffer.isBuffer(reply) ? failure(reply) : lost(reply.message);
    if (err) throw err;
  }

  get listening(): boolean {
    return this.pubsub.active;
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    if (!this.done) this.socket.resume();
  }

  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    this.reauth?.cancel();
    this.writes.flush();
    await new Promise<void>((resolve) => {
      this.socket.once('close', () => resolve());
      this.socket.end();
      setTimeout(() => this.socket.destroy(), 1000).unref();
    });
  }

  private fail(err: DrawbridgeError): void {
    if (this.done) return;
    this.done = true;
    this.reauth?.cancel();
    const fields = { sessionId: this.sessionId, code: err.code, reason: err.message };
    this.log.debug(fields, 'backend connection failed');
    this.socket.destroy();
    this.onFailed(err);
  }
}

function lost(detail: string): DrawbridgeError {
  return new DrawbridgeError(
    'BACKEND_UNREACHABLE',
    `lost the connection to the backend: ${detail}`,
    'reconnect; if it persists, check the backend (restarts, maxclients, timeout settings)',
  );
}

async function openStandalone(opts: RouterOptions): Promise<Router> {
  const { database, secrets, login } = opts;
  const socket = await connectBackend({ database, secrets, login });
  const router = new StandaloneRouter(socket, opts.log, login.credential.user, opts.renew, opts.sessionId);
  router.keepLoggedIn(login.credential);
  return router;
}

/** Standalone sessions share nothing: each has its own backend connection. */
export const standaloneRouters = (): Routers => ({ open: openStandalone, close: () => undefined });
