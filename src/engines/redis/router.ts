// The seam between a client session and the backend(s). The session parses, authenticates, authorizes
// and audits; a router only moves allowed commands to the right backend connection and their replies
// back. StandaloneRouter (standalone-router.ts) pipelines everything over one backend connection; the
// cluster router (cluster/) routes by key slot across nodes. The session picks one per Database; the
// engine holds one Routers per mode (src/wiring.ts lists them), closed with the engine.
import type { Database } from '../../api/database.js';
import type { AgentMetrics } from '../../agent/metrics.js';
import type { SecretReader } from '../../api/agent-config.js';
import { type DrawbridgeError, StacklessError } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { BackendCredential } from '../../agent/credentials.js';
import type { RedisCommand } from './parser.js';
import type { Renew } from './reauth.js';
import type { RespVersion } from './serializer.js';
import type { HeldWrites } from './write-batcher.js';

/** An error reply the router produced itself (not a backend frame); the session serializes it. */
export class RedisReplyError extends StacklessError {
  constructor(
    /** The first word of the reply: ERR, CROSSSLOT, TRYAGAIN, ... */
    readonly prefix: string,
    message: string,
  ) {
    super(message);
  }
}

/** How to log in to the backend as one database user. */
export interface BackendLogin {
  credential: BackendCredential;
  /** passthrough only: the password the client sent in its own AUTH/HELLO (never logged). */
  clientPassword?: string;
}

export interface RouterOptions {
  database: Database;
  secrets: SecretReader;
  login: BackendLogin;
  log: Logger;
  /** The client session this router serves, for log lines. */
  sessionId: string;
  /** Fresh credentials from the agent's provider, for logins whose credential expires (IAM tokens). */
  renew: Renew;
  /** The agent's counters (cluster redirects refused). */
  metrics?: AgentMetrics;
  /**
   * HELLO's protocol when a HELLO is what connects the session (it is dispatched next): a router
   * whose backend connections are per protocol (cluster) opens in it, and nothing for RESP2 first.
   */
  protocol?: RespVersion;
}

/** A reply for the session's place `seq`: `reply[start, end)` (all of `reply` without them). */
export type ReplyHandler = (seq: number, reply: Buffer, start?: number, end?: number) => void;

export interface Router {
  /**
   * Sends `cmd` on and calls `done` exactly once with its reply: a complete raw RESP frame (or the
   * frames of a multi-reply command such as SUBSCRIBE a b, concatenated), or an error the router
   * made. `done` may run out of dispatch order; the session restores the order. Returns false when
   * backend write buffers are full: the session stops reading the client until `onDrain` fires.
   *
   * HELLO always arrives as `HELLO 2|3 [SETNAME name]` (the session took AUTH out and gave a bare
   * HELLO the session's current protocol): once its reply is not an error, replies and pushes on this
   * session are in that protocol (serializer.ts RespVersion), until RESET returns them to RESP2. A backend connection
   * that answered HELLO 3 must only serve RESP3 sessions, and RESP2 ones likewise. In RESP3 pushes
   * (`>` frames: pub/sub messages, tracking invalidations) go to `onPush` while other commands run.
   */
  dispatch(cmd: RedisCommand, done: (reply: Buffer | RedisReplyError) => void): boolean;
  /**
   * `dispatch` without a callback made per command (the hot path of a router that has it): the reply
   * goes to the `onReply` handler with `seq`, the session's place for it in the reply order.
   */
  dispatchSeq?(cmd: RedisCommand, seq: number): boolean;
  /**
   * Reads a command only during `dispatch`/`dispatchSeq` (it keeps the bytes, which stay valid, not
   * the object): the session may hand it the parser's reused command. Otherwise it gets owned(cmd).
   */
  readonly borrowsCommands?: boolean;
  /** `replies`: held by the router while it hands over the replies of one backend read. */
  onReply?(handler: ReplyHandler, replies?: HeldWrites): void;
  /** Its backend writes, for the session to hold while it dispatches the commands of one client read. */
  readonly writes?: HeldWrites;
  /** Subscribed to a channel or pattern (or in MONITOR mode): messages come with no command. */
  readonly listening: boolean;
  /**
   * Frames that answer no command: pub/sub `message`/`pmessage`/`smessage` pushes, MONITOR lines, RESP3
   * pushes (tracking invalidations). Never counted as a reply.
   */
  onPush(handler: (frame: Buffer) => void): void;
  /** Pushes the router holds back (to keep them after earlier replies) now total `bytes`. */
  onPushHeld?(handler: (bytes: number) => void): void;
  /** Backend buffers have room again after `dispatch` returned false. */
  onDrain(handler: () => void): void;
  /**
   * The router can no longer serve this session (backend closed, protocol error, failed re-login);
   * called at most once. The session tells the client `err` and closes.
   */
  onFailure(handler: (err: DrawbridgeError) => void): void;
  /**
   * Logs every backend connection in as another database user, ordered after commands already
   * dispatched (AUTH switching user). Rejects with BACKEND_AUTH_FAILED and keeps serving as the
   * previous user when the backend refuses.
   */
  relogin(login: BackendLogin): Promise<void>;
  /**
   * After RESET (the backend connection is `default` again, in DB 0): logs in as `login` again and
   * selects spec.uri's DB, ordered after commands already dispatched.
   */
  restore(login: BackendLogin, database: Database): Promise<void>;
  /** The client is not reading: stop reading backend replies until `resume`. */
  pause(): void;
  resume(): void;
  /** Closes every backend connection; pending `done` callbacks are not called after this. */
  close(): Promise<void>;
}

export type RouterMode = 'standalone' | 'cluster';

/**
 * The routers of one mode, made once per engine: what its sessions share (cluster node connections,
 * topology) lives here, so two agents in one process share nothing.
 */
export interface Routers {
  /** A router connected and logged in (rejects with BACKEND_UNREACHABLE/BACKEND_AUTH_FAILED/...). */
  open(opts: RouterOptions): Promise<Router>;
  /** Closes what the sessions share (agent shutdown). */
  close(): void;
}

/** The router modes of a build, each made once per engine (cluster's loads its modules: src/wiring.ts). */
export type RouterModes = Partial<Record<RouterMode, () => Routers | Promise<Routers>>>;

/** How a session reaches a router: the engine's Routers of `mode`. */
export type OpenRouter = (mode: RouterMode, opts: RouterOptions) => Promise<Router>;
