// Agent → backend connections: TCP (+ TLS per spec.tls, with the client certificate for `mtls`) and
// the AUTH that logs in as the session's database user. Used by the standalone and cluster routers.
import { type Socket, connect as connectTcp } from 'node:net';
import { type TLSSocket, connect as connectTls } from 'node:tls';
import type { Database } from '../../api/database.js';
import { backendAddress } from '../../api/runtime.js';
import type { SecretReader } from '../../api/agent-config.js';
import { DrawbridgeError, errorMessage } from '../../errors.js';
import { backendTlsFailure, backendTlsOptions, withSharedContext } from '../../api/backend-tls.js';
import { contextFor, noteKeyExchange } from '../../api/backend-key-share.js';
import { ReplyFramer, RespError, decodeReply } from './reply-parser.js';
import type { BackendLogin } from './router.js';
import { encodeCommand } from './serializer.js';

export interface BackendConnectOptions {
  database: Database;
  secrets: SecretReader;
  login: BackendLogin;
  /** Defaults to the spec.uri address; cluster routers pass each node's. */
  host?: string;
  port?: number;
  timeoutMs?: number;
}

/** The AUTH commands to try in order (current password, then older ones); empty when none is sent. */
export function authAttempts(login: BackendLogin): Buffer[] {
  const cred = login.credential;
  switch (cred.kind) {
    case 'password':
      return [cred.password, ...(cred.fallbackPasswords ?? [])].map((p) =>
        encodeCommand(['AUTH', cred.user, p]),
      );
    case 'passthrough':
      return login.clientPassword === undefined
        ? []
        : [encodeCommand(['AUTH', cred.user, login.clientPassword])];
    case 'certificate':
      // The server maps the certificate to a user itself; connectBackend checks which one.
      return [];
  }
}

/**
 * With mtls the backend user comes from the certificate (Redis: `default`, or the CN with
 * tls-auth-clients-user) and the agent has no password to AUTH with, so an open connection cannot
 * change user. Undefined when `next` keeps the user of the connection logged in as `current`.
 */
export function certificateSwitchError(current: string, next: BackendLogin): DrawbridgeError | undefined {
  if (next.credential.kind !== 'certificate' || next.credential.user === current) return undefined;
  return new DrawbridgeError(
    'BACKEND_AUTH_FAILED',
    `mtls backend auth cannot switch an open connection from "${current}" to "${next.credential.user}"`,
    `reconnect and AUTH as "${next.credential.user}" before any other command`,
  );
}

export const WHOAMI = encodeCommand(['ACL', 'WHOAMI']);

/** The user the backend says this connection is (`ACL WHOAMI`) must be the one authorized. */
async function checkBackendUser(socket: Socket, user: string): Promise<void> {
  const failure = whoamiFailure(await roundTrip(socket, WHOAMI), user);
  if (failure) throw failure;
}

/** Undefined when `frame` (the reply to ACL WHOAMI) names `user`; otherwise the error to report. */
export function whoamiFailure(frame: Buffer, user: string): DrawbridgeError | undefined {
  const reply = decodeReply(frame);
  const actual = Buffer.isBuffer(reply) ? reply.toString('utf8') : String(reply);
  if (actual === user) return undefined;
  return new DrawbridgeError(
    'BACKEND_AUTH_FAILED',
    reply instanceof RespError
      ? `cannot check which user the backend maps the agent's certificate to: ${reply.message}`
      : `the backend maps the agent's client certificate to user "${actual}", not "${user}"`,
    'AUTH as that database user, or map certificates to users on the server (tls-auth-clients-user CN)',
  );
}

/** Undefined when `frame` (the reply to AUTH) accepts the login; otherwise the error to report. */
export function authFailure(frame: Buffer, user: string): DrawbridgeError | undefined {
  const reply = decodeReply(frame);
  if (!(reply instanceof RespError)) return undefined;
  return new DrawbridgeError(
    'BACKEND_AUTH_FAILED',
    `the backend refused the agent's login as "${user}": ${reply.message}`,
    'check the credential for this database user (spec.auth and its Secret) and the backend ACL',
  );
}

/** spec.uri's DB number (`redis://host:6379/3`); 0 when the URI names none (the schema checks digits). */
export function databaseIndex(database: Database): number {
  return Number(backendAddress(database.spec).database ?? 0);
}

/** SELECT of spec.uri's DB, due after every login (a new connection and RESET both start in DB 0). */
export function selectCommand(database: Database): Buffer | undefined {
  const db = databaseIndex(database);
  return db === 0 ? undefined : encodeCommand(['SELECT', String(db)]);
}

/** Undefined when `frame` (the reply to selectCommand) accepts it; otherwise the error to report. */
export function selectFailure(frame: Buffer, database: Database): DrawbridgeError | undefined {
  const reply = decodeReply(frame);
  if (!(reply instanceof RespError)) return undefined;
  const db = databaseIndex(database);
  const message = `the backend refused SELECT ${db} (the DB in spec.uri): ${reply.message}`;
  if (reply.prefix === 'NOPERM') {
    return new DrawbridgeError('BACKEND_AUTH_FAILED', message, 'allow SELECT in the backend ACL (+select)');
  }
  return new DrawbridgeError(
    'INVALID_CONFIG',
    message,
    /cluster/i.test(reply.message)
      ? `Redis Cluster has only DB 0: remove "/${db}" from spec.uri`
      : `use a DB number below the server's \`databases\` setting in spec.uri`,
  );
}

/**
 * Connects, logs in and selects spec.uri's DB. The socket comes back paused with nothing pending:
 * attach 'data' and 'error' handlers, then resume() it.
 */
export async function connectBackend(opts: BackendConnectOptions): Promise<Socket> {
  const addr = backendAddress(opts.database.spec);
  const host = opts.host ?? addr.host;
  const port = opts.port ?? addr.port;
  const attempts = authAttempts(opts.login);
  const tls = backendTlsOptions(opts.database, opts.secrets, opts.login.credential);
  const socket = await open(host, port, tls && withSharedContext(tls), opts.timeoutMs ?? 10_000);
  socket.pause();
  try {
    await login(socket, attempts, opts.login.credential.user);
    if (opts.login.credential.kind === 'certificate')
      await checkBackendUser(socket, opts.login.credential.user);
    const select = selectCommand(opts.database);
    const refused = select && selectFailure(await roundTrip(socket, select), opts.database);
    if (refused) throw refused;
  } catch (err) {
    socket.destroy();
    throw err;
  }
  return socket;
}

function open(
  host: string,
  port: number,
  tls: ReturnType<typeof backendTlsOptions>,
  timeoutMs: number,
): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const server = `${host}:${port}`;
    const context = tls?.secureContext;
    const secureContext = context && contextFor(context, server);
    const s = tls ? connectTls({ ...tls, secureContext, host, port }) : connectTcp({ host, port });
    const ready = tls ? 'secureConnect' : 'connect';
    const timer = setTimeout(() => s.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    s.setNoDelay(true);
    s.setKeepAlive(true, 30_000);
    const onError = (err: Error) => {
      clearTimeout(timer);
      const tlsFailure = tls && /certificate|SSL|TLS|altnames|self.signed/i.test(err.message);
      reject(
        tlsFailure
          ? new DrawbridgeError('BACKEND_TLS', `TLS to ${host}:${port} failed: ${err.message}`, tlsHint)
          : new DrawbridgeError(
              'BACKEND_UNREACHABLE',
              `cannot reach the backend at ${host}:${port}: ${errorMessage(err)}`,
              'check spec.uri and that the database accepts connections from the agent',
            ),
      );
    };
    s.once('error', onError);
    s.once(ready, () => {
      if (context && secureContext) noteKeyExchange(context, server, secureContext, s as TLSSocket);
      clearTimeout(timer);
      s.off('error', onError);
      resolve(s);
    });
  });
}

const tlsHint = 'check spec.tls (mode, caSecretRef, serverName) against the server certificate';

/** Sends each AUTH attempt until one is accepted; rejects with the last refusal. */
async function login(socket: Socket, attempts: Buffer[], user: string): Promise<void> {
  let failure: DrawbridgeError | undefined;
  for (const auth of attempts) {
    failure = authFailure(await roundTrip(socket, auth), user);
    if (!failure) return;
  }
  if (failure) throw failure;
}

/** One command and its reply (a copy) on a socket nobody else reads yet; leaves the socket paused. */
export function roundTrip(socket: Socket, command: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('error', onEnd);
      socket.off('close', onEnd);
    };
    const framer = new ReplyFramer((frame) => {
      cleanup();
      socket.pause();
      resolve(Buffer.from(frame));
    });
    const onData = (chunk: Buffer) => {
      try {
        framer.feed(chunk);
      } catch (err) {
        cleanup();
        reject(err);
      }
    };
    const onEnd = (err?: Error | boolean) => {
      cleanup();
      reject(
        backendTlsFailure(err, 'during login') ??
          new DrawbridgeError(
            'BACKEND_UNREACHABLE',
            `the backend closed the connection during login${err instanceof Error ? `: ${err.message}` : ''}`,
            'check the backend logs (maxclients, ACL, TLS settings)',
          ),
      );
    };
    socket.on('data', onData);
    socket.once('error', onEnd);
    socket.once('close', onEnd);
    socket.write(command);
    socket.resume();
  });
}
