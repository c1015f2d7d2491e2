// Backend connections of one database login (user + credential) and protocol (RESP2 or RESP3) to
// every cluster node: a RESP3 session's replies are shaped for RESP3 clients only (protocol.ts).
//
// Pooling, and why:
// - Plain commands of every session logged in as the same database user share ONE pipelined
//   connection per node. Redis runs one command at a time per node anyway, so a second connection
//   buys no parallelism; one connection turns many clients' small writes into large pipelined writes
//   and reads (the twemproxy insight), keeps the cluster's connection count at nodes × users instead
//   of nodes × clients, and makes a new client session cost no backend round trip. Sharing is safe
//   only per login: the backend's ACL for that user applies to everything on it, and per-person rules
//   were enforced by the session before dispatch.
// - Commands that change or hold connection state — MULTI/EXEC/WATCH, blocking pops, (S)SUBSCRIBE —
//   get a dedicated connection, taken from a small idle list per node and given back only when clean
//   (nothing in flight, no transaction, no subscription), otherwise closed. A session tracking reads
//   borrows through its Tracking instead, whose connections never come back here (tracking.ts).
// - Rotating credentials (IAM tokens): each new connection logs in with a fresh one, and re-AUTHs
//   before it expires while it is shared or idle (reauth.ts). A connection a session holds (a
//   transaction may be open on it) waits until it is given back; a subscribed one cannot AUTH in
//   RESP2 and ends at the credential's end of life like a direct client's would.
import type { Socket } from 'node:net';
import { DrawbridgeError } from '../../../errors.js';
import { Reauth, type Renew, expiryOf } from '../reauth.js';
import type { BackendLogin } from '../router.js';
import type { RespVersion } from '../serializer.js';
import { NodeConnection, NodeUnavailable } from './node-connection.js';

/** Connects and logs in to one node (the backend-auth module does the work). */
export type NodeConnector = (node: number, login: BackendLogin) => Promise<Socket>;

const MAX_IDLE_PER_NODE = 4;

export class LoginPool {
  /** By node id (ids are small and dense): an index, not a Map lookup, per command. */
  private shared: (NodeConnection | undefined)[] = [];
  private readonly idle = new Map<number, NodeConnection[]>();
  private readonly dedicated = new Set<NodeConnection>();
  /** Routers currently using this login; the pool closes when the last one leaves (after a grace). */
  users = 0;
  private closed = false;

  constructor(
    readonly key: string,
    /** Used for new connections; replaced by the newest when credentials rotate (IAM tokens). */
    public login: BackendLogin,
    private readonly connector: NodeConnector,
    private readonly label: (node: number) => string,
    /** Fresh credentials for rotating logins; without it connections use `login` as it is. */
    private readonly renew?: Renew,
    /** What every connection of this pool speaks (HELLO 3 after login for RESP3). */
    readonly protocol: RespVersion = 2,
  ) {}

  get isClosed(): boolean {
    return this.closed;
  }

  /** A connection to `node` that stays logged in; `frames` makes it a pub/sub connection. */
  private open(node: number, frames?: (frame: Buffer) => void): NodeConnection {
    const login = this.freshLogin();
    const socket = login.then((l) => this.connector(node, l));
    const c = new NodeConnection(node, this.label(node), socket, frames, this.protocol);
    const renew = this.renew;
    if (renew && !frames) {
      const reauth = new Reauth({
        renew,
        ready: () => this.canReauth(c),
        send: (auth) => this.sendReauth(c, auth),
        fail: (err) => c.destroy(err),
      });
      Promise.all([login, socket]).then(
        ([l]) => {
          if (!c.closed) reauth.arm(l.credential);
        },
        () => undefined, // the connection reports its own failure
      );
      c.onClose(() => reauth.cancel());
    }
    return c;
  }

  /** The pool's login, with a rotating credential replaced by a fresh one (tokens expire for AUTH). */
  private async freshLogin(): Promise<BackendLogin> {
    if (this.closed) throw new DrawbridgeError('AGENT_SHUTDOWN', 'cluster connections are closing');
    const { credential } = this.login;
    if (!this.renew || expiryOf(credential) === undefined) return this.login;
    return { credential: await this.renew(credential.user) };
  }

  /** Shared and idle connections hold no transaction; one a session holds might (AUTH would queue). */
  private canReauth(c: NodeConnection): boolean {
    return !c.closed && !this.dedicated.has(c);
  }

  private sendReauth(c: NodeConnection, auth: Buffer): Promise<Buffer | DrawbridgeError> | undefined {
    if (!this.canReauth(c)) return undefined;
    return new Promise((resolve) =>
      c.send(auth, (reply) => resolve(reply instanceof NodeUnavailable ? reply.error : reply)),
    );
  }

  /** The pipelined connection for plain commands to `node`, (re)opened on demand. */
  sharedTo(node: number): NodeConnection {
    let c = this.shared[node];
    if (!c || c.closed) {
      c = this.open(node);
      this.shared[node] = c;
    }
    return c;
  }

  /** A connection to `node` for one session's exclusive use; give it back with `release`. */
  take(node: number, frames?: (frame: Buffer) => void): NodeConnection {
    if (!frames) {
      const list = this.idle.get(node);
      while (list?.length) {
        const c = list.pop()!;
        if (!c.closed) {
          this.dedicated.add(c);
          return c;
        }
      }
    }
    const c = this.open(node, frames);
    this.dedicated.add(c);
    c.onClose(() => this.dedicated.delete(c));
    return c;
  }

  /** Returns a dedicated connection; `clean` means no transaction, subscription or reply is pending. */
  release(c: NodeConnection, clean: boolean): void {
    // Taken from this pool before a relogin switched pools: it belongs to the old login, close it.
    if (!this.dedicated.delete(c)) {
      c.destroy('released');
      return;
    }
    const list = this.idle.get(c.node) ?? [];
    if (!clean || c.closed || !c.ready || c.inFlight > 0 || list.length >= MAX_IDLE_PER_NODE) {
      c.destroy('released');
      return;
    }
    list.push(c);
    this.idle.set(c.node, list);
  }

  /** Closes connections to nodes that left the cluster. */
  forget(nodes: ReadonlySet<number>): void {
    this.shared.forEach((c, node) => {
      if (c && !nodes.has(node)) {
        c.destroy('node left the cluster');
        this.shared[node] = undefined;
      }
    });
    for (const [node, list] of this.idle) {
      if (!nodes.has(node)) {
        for (const c of list) c.destroy('node left the cluster');
        this.idle.delete(node);
      }
    }
  }

  /** Some connection of this login has logged in and is open. */
  get loggedIn(): boolean {
    for (const c of this.connections()) if (c.ready) return true;
    return false;
  }

  /** Every connection of this login: shared, idle and held by sessions. */
  *connections(): IterableIterator<NodeConnection> {
    for (const c of this.shared) if (c) yield c;
    for (const list of this.idle.values()) yield* list;
    yield* this.dedicated;
  }

  /** Closes everything; connections asked for afterwards fail at once (close listeners may ask). */
  close(): void {
    this.closed = true;
    const all = [...this.connections()];
    this.shared = [];
    this.idle.clear();
    this.dedicated.clear();
    for (const c of all) c.destroy('pool closed');
  }
}
