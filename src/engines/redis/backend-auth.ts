// Agent → backend connections: TCP (+ TLS per spec.tls, with the client certificate for `mtls`) and
// the AUTH that logs in as the session's database user. Used by the standalone and cluster routers.
import { type Socket, connect as connectTcp } from 'node:net';
import { X509Certificate } from 'node:crypto';
import { connect as connectTls } from 'node:tls';
import type { Database } from '../../api/database.js';
import { backendAddress } from '../../api/database.js';
import type { SecretReader } from '../../agent/state.js';
import { DrawbridgeError, errorMessage } from '../../errors.js';
import { backendTlsOptions } from '../backend-tls.js';
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
      checkCertificateUser(cred.user, cred.certPem);
      return [];
  }
}

/**
 * Redis maps a TLS client certificate to a user by itself (`default`, or the certificate's CN with
 * tls-auth-clients-user), and AUTH needs a password the agent does not have; so an mtls backend
 * login can only be the user the certificate stands for.
 */
function checkCertificateUser(user: string, certPem: string): void {
  if (user === 'default') return;
  const cn = /^CN=(.*)$/m.exec(new X509Certificate(certPem).subject)?.[1];
  if (user !== cn) {
    throw new DrawbridgeError(
      'CREDENTIALS_UNAVAILABLE',
      `mtls backend auth logs in as the certificate's user ("${cn ?? 'default'}" or default), not "${user}"`,
      'AUTH as that user, or use auth type password for per-user backend logins',
    );
  }
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

/**
 * Connects and logs in. The socket comes back paused with nothing pending: attach 'data' and 'error'
 * handlers, then resume() it.
 */
export async function connectBackend(opts: BackendConnectOptions): Promise<Socket> {
  const addr = backendAddress(opts.database.spec);
  const host = opts.host ?? addr.host;
  const port = opts.port ?? addr.port;
  const attempts = authAttempts(opts.login);
  const tls = backendTlsOptions(opts.database, opts.secrets, opts.login.credential);
  const socket = await open(host, port, tls, opts.timeoutMs ?? 10_000);
  socket.pause();
  try {
    await login(socket, attempts, opts.login.credential.user);
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
    const s = tls ? connectTls({ ...tls, host, port }) : connectTcp({ host, port });
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
