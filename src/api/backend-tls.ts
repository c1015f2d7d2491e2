// TLS options for a connection to the backend, from `spec.tls` and the credential: the agent's engines
// and the operator's reachability probe connect the same way, so both read it from here.
import type { ConnectionOptions, SecureContext } from 'node:tls';
import { checkServerIdentity, createSecureContext } from 'node:tls';
import { isIP } from 'node:net';
import { DrawbridgeError } from '../errors.js';
import { learnKeyShares } from './backend-key-share.js';
import type { SecretReader } from './agent-config.js';
import type { Database } from './database.js';
import { backendAddress } from './runtime.js';

/** What TLS needs of a backend credential (agent/credentials.ts BackendCredential): a client certificate. */
type CredentialTls = { kind: string; certPem?: string; keyPem?: string };

/** Undefined when `spec.tls.mode` is `disabled` (plaintext to the backend). */
export function backendTlsOptions(
  db: Database,
  secrets: SecretReader,
  cred?: CredentialTls,
): ConnectionOptions | undefined {
  const tls = db.spec.tls;
  if (tls.mode === 'disabled') return undefined;
  const addr = backendAddress(db.spec);
  const serverName = tls.serverName ?? addr.host;
  // SNI carries host names only (RFC 6066); an IP address is still checked against the certificate's SANs.
  const opts: ConnectionOptions = isIP(serverName) ? {} : { servername: serverName };
  if (tls.caSecretRef) {
    const ca = secrets.secret(tls.caSecretRef.name)?.[tls.caSecretRef.key];
    if (!ca) {
      throw new DrawbridgeError(
        'BACKEND_TLS',
        `CA Secret "${tls.caSecretRef.name}" key "${tls.caSecretRef.key}" (spec.tls.caSecretRef) is missing`,
        'create the Secret with the CA certificate that signed the database server certificate',
      );
    }
    opts.ca = ca;
  }
  if (tls.mode === 'insecure') opts.rejectUnauthorized = false;
  // verify-ca: check the chain, not the name (servers addressed by IP or through a load balancer).
  if (tls.mode === 'verify-ca') opts.checkServerIdentity = () => undefined;
  if (tls.mode === 'verify-full') {
    opts.checkServerIdentity = (host, cert) => checkServerIdentity(tls.serverName ?? host, cert);
  }
  if (cred?.kind === 'certificate') {
    opts.cert = cred.certPem;
    opts.key = cred.keyPem;
  }
  return opts;
}

/**
 * A TLS error OpenSSL raised on a backend connection after its handshake (Node gives such errors
 * OpenSSL's `library`), as the error to report `during` a phase. Without this it read as "the backend
 * closed the connection" with a hint at the backend's logs. An alert is the server refusing the session
 * (TLS 1.3 clients learn that their certificate was refused only after the handshake); any other
 * OpenSSL error is the agent's own (a record it could not read, or its OpenSSL failing, as Node 20's
 * did once with a stale error queue). Undefined for any other error.
 */
export function backendTlsFailure(err: unknown, during: string): DrawbridgeError | undefined {
  if (!(err instanceof Error) || typeof (err as { library?: unknown }).library !== 'string') return undefined;
  const alert = /\balert\b/i.test(err.message);
  return new DrawbridgeError(
    'BACKEND_TLS',
    `TLS to the backend failed ${during}: ${err.message}`,
    alert
      ? 'the server refused the TLS session: check spec.tls and whether the server requires a client certificate (spec.auth.type mtls)'
      : "the agent's OpenSSL raised it, not a server alert: check spec.tls, the agent's Node.js and OpenSSL (node -p process.versions) and what sits between the agent and the server",
  );
}

const contexts = new Map<string, SecureContext>();
/** Distinct (CA, certificate, key) sets kept: a few per Database, and mtls certificates per user. */
const MAX_CONTEXTS = 64;
let last: (Pick<ConnectionOptions, 'ca' | 'cert' | 'key'> & { secureContext: SecureContext }) | undefined;

/**
 * `opts` with its CA and client certificate as a SecureContext built once per distinct set and shared
 * by every connection using it: given `ca`, `cert` or `key`, tls.connect parses them into a new
 * OpenSSL context (CPU and native memory) on every connect. A rotated Secret is a new set. Connect
 * with contextFor(secureContext, server) and tell noteKeyExchange what the server chose (./backend-key-share.ts).
 */
export function withSharedContext(opts: ConnectionOptions): ConnectionOptions {
  const { ca, cert, key, ...rest } = opts;
  // The set of the last connect, as it nearly always is: compared as they are, not joined into a key.
  if (last && last.ca === ca && last.cert === cert && last.key === key) {
    return { ...rest, secureContext: last.secureContext };
  }
  const id = JSON.stringify([ca, cert, key]);
  let secureContext = contexts.get(id);
  if (secureContext === undefined) {
    secureContext = createSecureContext({ ca, cert, key });
    learnKeyShares(secureContext, { ca, cert, key });
    if (contexts.size >= MAX_CONTEXTS) contexts.delete(contexts.keys().next().value!);
    contexts.set(id, secureContext);
  }
  last = { ca, cert, key, secureContext };
  return { ...rest, secureContext };
}
