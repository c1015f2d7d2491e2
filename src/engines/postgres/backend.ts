// Connections from the agent to the database: TCP, then (per spec.tls) PostgreSQL's SSLRequest and a
// verified TLS handshake, then startup and login. Used for sessions and for forwarding cancels.
import { type Socket, isIP, connect as tcpConnect } from 'node:net';
import { type ConnectionOptions, type TLSSocket, checkServerIdentity, connect as tlsConnect } from 'node:tls';
import type { SecretReader } from '../../api/agent-config.js';
import type { Database } from '../../api/database.js';
import { backendAddress } from '../../api/runtime.js';
import { DrawbridgeError, errorMessage, isDrawbridgeError } from '../../errors.js';
import { backendTlsOptions, withSharedContext } from '../../api/backend-tls.js';
import { contextFor, noteKeyExchange } from '../../api/backend-key-share.js';
import type { BackendCredential } from '../../agent/credentials.js';
import { BackendAuthError, INVALID_PASSWORD, authenticate } from './backend-auth.js';
import { noteServerCertificate } from './scram.js';
import { SSL_REQUEST, startupMessage } from './serializer.js';
import type { SpareBackend } from './spare.js';
import { Wire, ignoreError } from './wire.js';

const CONNECT_TIMEOUT_MS = 10_000;

export interface BackendTarget {
  host: string;
  port: number;
  /** Undefined for spec.tls.mode `disabled`. */
  tls: ConnectionOptions | undefined;
}

/** Targets by address and TLS settings; reloads and rotated credentials add entries, the oldest go. */
const targets = new Map<string, BackendTarget>();
const MAX_TARGETS = 16;

/**
 * Where and how to connect for a Database (and a client-certificate credential). The same settings give
 * the same object: its TLS context (parsed CA and key, an OpenSSL SSL_CTX: CPU on every connect and
 * native memory per session otherwise) is built once, and a spare connection is matched to it.
 */
export function backendTarget(db: Database, secrets: SecretReader, cred?: BackendCredential): BackendTarget {
  const { host, port } = backendAddress(db.spec);
  const tls = backendTlsOptions(db, secrets, cred);
  const id = JSON.stringify([host, port, db.spec.tls, tls?.ca, tls?.cert, tls?.key]);
  let target = targets.get(id);
  if (!target) {
    target = { host, port, tls: tls && withSharedContext(tls) };
    targets.set(id, target);
    if (targets.size > MAX_TARGETS) targets.delete(targets.keys().next().value!);
  }
  return target;
}

/** TCP (+ TLS) to the backend, ready for a startup packet or a CancelRequest. */
export async function openBackend(target: BackendTarget): Promise<Socket> {
  const raw = await connectTcp(target);
  if (!target.tls) return raw;
  try {
    return await startTls(raw, target, target.tls);
  } catch (err) {
    raw.destroy();
    throw err;
  }
}

function connectTcp(target: BackendTarget): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect({ host: target.host, port: target.port, noDelay: true, keepAlive: true });
    const fail = (why: string) => {
      socket.destroy();
      reject(
        new DrawbridgeError(
          'BACKEND_UNREACHABLE',
          `cannot reach the database at ${target.host}:${target.port}: ${why}`,
          'check the Database spec.uri and that the server accepts connections from the agent',
        ),
      );
    };
    const timer = setTimeout(
      () => fail(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`),
      CONNECT_TIMEOUT_MS,
    );
    socket.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      fail(err.code ?? err.message);
    });
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      socket.on('error', ignoreError);
      resolve(socket);
    });
  });
}

/** PostgreSQL negotiates TLS in-band: SSLRequest, a one-byte answer, then the handshake. */
function startTls(raw: Socket, target: BackendTarget, opts: ConnectionOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const tlsError = (message: string, hint: string) =>
      reject(new DrawbridgeError('BACKEND_TLS', `TLS to the database failed: ${message}`, hint));
    raw.once('data', (answer: Buffer) => {
      raw.pause();
      if (answer[0] === 0x4e) {
        return tlsError(
          'the server does not accept TLS (answered N to SSLRequest)',
          'turn on ssl in the server postgresql.conf, or set spec.tls.mode: disabled (not recommended)',
        );
      }
      // Bytes after 'S' would be unencrypted data injected before the handshake (CVE-2021-23222).
      if (answer[0] !== 0x53 || answer.length !== 1) {
        return tlsError(
          'unexpected answer to SSLRequest',
          'check that spec.uri points at a PostgreSQL server',
        );
      }
      // SNI may not carry an IP address (RFC 6066); the identity check then uses `host`.
      const servername = opts.servername && !isIP(opts.servername) ? opts.servername : undefined;
      const verify = opts.checkServerIdentity ?? checkServerIdentity;
      const server = `${target.host}:${target.port}`;
      const secureContext = contextFor(opts.secureContext!, server);
      const socket: TLSSocket = tlsConnect({
        ...opts,
        secureContext,
        host: target.host,
        servername,
        socket: raw,
        // Node reads the server certificate for this check; SCRAM-SHA-256-PLUS binds to that same one.
        checkServerIdentity: (host, cert) => {
          noteServerCertificate(socket, cert.raw);
          return verify(host, cert);
        },
      });
      socket.once('secureConnect', () => {
        noteKeyExchange(opts.secureContext!, server, secureContext, socket);
        raw.off('close', closed);
        socket.removeAllListeners('error');
        socket.on('error', ignoreError);
        resolve(socket);
      });
      socket.once('error', (err) =>
        tlsError(
          errorMessage(err),
          'put the CA that signed the server certificate in spec.tls.caSecretRef and check spec.tls.serverName',
        ),
      );
    });
    const closed = () => tlsError('the server closed the connection', 'check the server log');
    raw.once('close', closed);
    raw.write(SSL_REQUEST);
  });
}

export interface BackendLogin {
  target: BackendTarget;
  credential: BackendCredential;
  /** Startup parameters; `user` and `database` are the ones the agent was allowed to use. */
  params: [string, string][];
  /** Named in hints when the backend rejects a password. */
  secretName: string;
  /** Told about each backend socket as it opens, so the caller can close it on abort. */
  opened?(socket: Socket): void;
  /** A connection opened ahead of need, tried first. */
  spare?: SpareBackend;
}

/**
 * Opens a backend connection (or takes the spare) and logs in. When the password is rejected and the
 * credential carries fallback passwords (mid-rotation), each is tried on a fresh connection, as the
 * server requires. A spare the server closed in the meantime is replaced by a fresh connection.
 */
export async function loginBackend(login: BackendLogin): Promise<Wire> {
  const cred = login.credential;
  if (cred.kind === 'passthrough') {
    throw new DrawbridgeError(
      'CREDENTIALS_UNAVAILABLE',
      'auth type passthrough is not supported for PostgreSQL',
      'use spec.auth.type password, mtls, rds-iam, redshift or redshift-serverless',
    );
  }
  const passwords =
    cred.kind === 'password' ? [cred.password, ...(cred.fallbackPasswords ?? [])] : [undefined];
  let spare = login.spare?.take(login.target);
  for (let i = 0; ;) {
    const socket = spare ?? (await openBackend(login.target));
    const wasSpare = spare !== undefined;
    spare = undefined;
    login.opened?.(socket);
    const wire = new Wire(socket, 'database');
    socket.write(startupMessage(login.params));
    try {
      const tls = login.target.tls ? (socket as TLSSocket) : undefined;
      await authenticate(wire, cred, passwords[i], tls, login.secretName);
      return wire;
    } catch (err) {
      wire.detach();
      socket.destroy();
      if (wasSpare && isDrawbridgeError(err, 'BACKEND_UNREACHABLE')) continue; // same password, fresh socket
      const retry = err instanceof BackendAuthError && err.sqlState === INVALID_PASSWORD;
      if (!retry || ++i >= passwords.length) throw err;
    }
  }
}
