// Client-facing TLS. Client certificates are requested but not enforced by the handshake, so a client
// without one (a workload sending a token as its password) still reaches the protocol layer, where a
// missing or bad certificate gets an error in the client's own protocol instead of a bare TLS alert.
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { type SecureContext, TLSSocket, createSecureContext } from 'node:tls';
import { type Identity, identityFromCertificate } from '../authn/identity.js';
import { DrawbridgeError } from '../errors.js';

export interface ServerTlsFiles {
  certFile: string;
  keyFile: string;
  clientCAFile: string;
}

export function serverContextFromFiles(files: ServerTlsFiles): SecureContext {
  return createSecureContext({
    cert: readFileSync(files.certFile),
    key: readFileSync(files.keyFile),
    ca: readFileSync(files.clientCAFile),
    minVersion: 'TLSv1.2',
  });
}

/** Wraps an accepted socket in server-side TLS; `head` is any bytes already read past the TLS start. */
export function acceptTls(socket: Socket, context: SecureContext): TLSSocket {
  const tls = new TLSSocket(socket, {
    isServer: true,
    secureContext: context,
    requestCert: true,
    rejectUnauthorized: false,
  });
  // tls.Server records the chain check on its sockets ('secure' → authorized / authorizationError); a
  // TLSSocket wrapped by hand never does, so without this every client certificate looks unverified.
  tls.once('secure', () => {
    const handle = (tls as unknown as { _handle?: { verifyError(): Error | null } })._handle;
    const err = handle?.verifyError();
    if (err) tls.authorizationError = err;
    else tls.authorized = true;
  });
  return tls;
}

/** The certificate identity, undefined when no certificate was sent, or an error naming why it was rejected. */
export function certificateIdentity(tls: TLSSocket): Identity | undefined {
  const cert = tls.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return undefined;
  if (!tls.authorized) {
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      `client certificate rejected: ${tlsErrorCode(tls.authorizationError)}`,
      'get a fresh certificate with kubectl db login NAME (it must be issued by the Drawbridge client CA)',
    );
  }
  return identityFromCertificate(cert);
}

function tlsErrorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? String(err);
}
