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

const contexts = new Map<string, SecureContext>();
/** Distinct (CA, certificate, key) sets kept: a few per Database, and mtls certificates per user. */
const MAX_CONTEXTS = 64;

/**
 * `opts` with its CA and client certificate as a SecureContext built once per distinct set and shared
 * by every connection using it: given `ca`, `cert` or `key`, tls.connect parses them into a new
 * OpenSSL context (CPU and native memory) on every connect. A rotated Secret is a new set. Connect
 * with contextFor(secureContext, server) and tell noteKeyExchange what the server chose (./backend-key-share.ts).
 */
export function withSharedContext(opts: ConnectionOptions): ConnectionOptions {
  const { ca, cert, key, ...rest } = opts;
  const id = JSON.stringify([ca, cert, key]);
  let secureContext = contexts.get(id);
  if (secureContext === undefined) {
    secureContext = createSecureContext({ ca, cert, key });
    learnKeyShares(secureContext, { ca, cert, key });
    if (contexts.size >= MAX_CONTEXTS) contexts.delete(contexts.keys().next().value!);
    contexts.set(id, secureContext);
  }
  return { ...rest, secureContext };
}
