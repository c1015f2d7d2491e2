// Client-facing TLS. Client certificates are requested but not enforced by the handshake, so a client
// without one (a workload sending a token as its password) still reaches the protocol layer, where a
// missing or bad certificate gets an error in the client's own protocol instead of a bare TLS alert.
import { X509Certificate, constants, createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { type SecureContext, TLSSocket, createSecureContext } from 'node:tls';
import { type Identity, identityFromCertificate } from '../authn/identity.js';
import { DrawbridgeError, errorMessage } from '../errors.js';

export interface ServerTlsFiles {
  certFile: string;
  keyFile: string;
  clientCAFile: string;
}

/**
 * The serving context from PEM files. Each file is checked on its own first: OpenSSL's own error for a
 * bad one ("DECODER routines::unsupported") names neither the file nor what it should hold.
 */
export function serverContextFromFiles(files: ServerTlsFiles): SecureContext {
  const key = readPem(files.keyFile, 'tls.keyFile', 'the PEM private key of the serving certificate', (pem) =>
    createPrivateKey(pem),
  );
  const cert = readPem(
    files.certFile,
    'tls.certFile',
    'the PEM serving certificate',
    (pem) => new X509Certificate(pem),
  );
  const ca = readPem(
    files.clientCAFile,
    'tls.clientCAFile',
    'the PEM client CA certificate(s)',
    (pem) => new X509Certificate(pem),
  );
  try {
    // No session is ever resumed: a resumed handshake carries no client certificate (OpenSSL would
    // hand back the one of the session's first holder), so every session is a full handshake. The
    // context has no session id context, which OpenSSL 3.5 treats as a cache miss for a ticket
    // offered back; OpenSSL 3.0 (Node 20, 22) failed such a handshake with an internal_error alert,
    // so a client that offered its ticket on reconnect (JDBC and Go cache them) could not connect.
    // No stateless tickets, then: those a client gets name a session in a cache Node does not keep.
    // No TLS 1.2 renegotiation either: the client certificate is read after the first handshake's chain
    // check (PostgreSQL: after the startup packet), and a renegotiation in between could swap in another
    // certificate from any CA, whose subject the agent would then take for the client's identity.
    return createSecureContext({
      cert,
      key,
      ca,
      minVersion: 'TLSv1.2',
      secureOptions: constants.SSL_OP_NO_TICKET | constants.SSL_OP_NO_RENEGOTIATION,
    });
  } catch (err) {
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      `tls.certFile ${files.certFile} and tls.keyFile ${files.keyFile} do not go together: ${errorMessage(err)}`,
      'give the key of that certificate (or the certificate of that key)',
    );
  }
}

/** `file`'s bytes once `check` (which throws on what it cannot parse) accepted them. */
function readPem(file: string, field: string, holds: string, check: (pem: Buffer) => unknown): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (err) {
    const reason = (err as NodeJS.ErrnoException).code ?? errorMessage(err);
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      `${field} ${file}: cannot read it (${reason})`,
      `point ${field} at ${holds}`,
    );
  }
  try {
    check(pem);
  } catch {
    // Not the parser's message: a broken key file could echo part of the key.
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      `${field} ${file}: not ${holds}`,
      `point ${field} at ${holds}`,
    );
  }
  return pem;
}

/** The accepted TCP socket under each TLSSocket acceptTls made (the agent counts connections by it). */
const accepted = new WeakMap<Socket, Socket>();

/** The TCP socket the agent accepted for `client` (a TLSSocket from acceptTls, or that socket itself). */
export function acceptedSocket(client: Socket): Socket {
  return accepted.get(client) ?? client;
}

/** Wraps an accepted socket in server-side TLS; `head` is any bytes already read past the TLS start. */
export function acceptTls(socket: Socket, context: SecureContext): TLSSocket {
  const tls = new TLSSocket(socket, {
    isServer: true,
    secureContext: context,
    requestCert: true,
    rejectUnauthorized: false,
  });
  accepted.set(tls, socket);
  // tls.Server records the chain check on its sockets ('secure' → authorized / authorizationError); a
  // TLSSocket wrapped by hand never does, so without this every client certificate looks unverified.
  tls.once('secure', () => {
    const handle = (tls as unknown as { _handle?: { verifyError(): Error | null } })._handle;
    const err = handle?.verifyError();
    if (err) tls.authorizationError = err;
    else tls.authorized = true;
    checked.set(tls, tls.getPeerX509Certificate() ?? null);
  });
  return tls;
}

/**
 * The certificate whose chain the handshake checked, kept as of that check: the identity is read
 * from it, never from the socket later (PostgreSQL reads it after the startup packet), so nothing
 * that could change the peer's certificate in between (a TLS 1.2 renegotiation, refused anyway by
 * the serving context) can make a certificate the check never saw the client's identity.
 */
const checked = new WeakMap<TLSSocket, X509Certificate | null>();

/** The certificate identity, undefined when no certificate was sent, or an error naming why it was rejected. */
export function certificateIdentity(tls: TLSSocket): Identity | undefined {
  const cert = checked.has(tls) ? checked.get(tls) : tls.getPeerX509Certificate();
  if (!cert) return undefined;
  if (!tls.authorized) {
    const code = tlsErrorCode(tls.authorizationError);
    const why = UNTRUSTED_ISSUER.has(code) ? ' (its issuer is not a CA this agent trusts)' : '';
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      `client certificate rejected: ${code}${why}`,
      'get a fresh certificate with kubectl db login NAME (it must be issued by the Drawbridge client CA)',
    );
  }
  return identityFromCertificate(cert);
}

/** What OpenSSL says of a certificate from another CA, or from one a CA rotation retired. */
const UNTRUSTED_ISSUER = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
]);

function tlsErrorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? String(err);
}
