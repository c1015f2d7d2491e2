// The Kubernetes CertificateSigningRequest behind `kubectl db login`: what it carries, and waiting for
// the controller's decision. The API server fills in spec.username/groups from the caller's own
// credentials; the annotations say which database and database user the certificate is for.
import { X509Certificate, createPublicKey } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { DrawbridgeError } from '../../errors.js';
import { pemCertificates } from '../../pki/pem.js';
import { ANNOTATION_DATABASE, ANNOTATION_DB_USER, SIGNER_NAME } from '../../operator/names.js';

/** The API server rejects expirationSeconds below ten minutes. */
export const MIN_EXPIRATION_SECONDS = 600;

export interface CsrRequest {
  namespace: string;
  database: string;
  dbUser: string;
  csrPem: string;
  /** Requested lifetime; the signer caps it at the roles' maxSessionTTL. Undefined: the signer decides. */
  expirationSeconds?: number;
}

export function csrObject(req: CsrRequest): k8s.V1CertificateSigningRequest {
  // CSRs are cluster-scoped: namespace and name both go into the generated name, which the API
  // server completes with a random suffix so repeated logins never collide.
  const prefix = `db-${req.namespace}-${req.database}`.slice(0, 240).replace(/[.-]+$/, '');
  return {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: {
      generateName: `${prefix}-`,
      annotations: {
        [ANNOTATION_DATABASE]: `${req.namespace}/${req.database}`,
        [ANNOTATION_DB_USER]: req.dbUser,
      },
    },
    spec: {
      signerName: SIGNER_NAME,
      request: Buffer.from(req.csrPem).toString('base64'),
      usages: ['digital signature', 'client auth'],
      ...(req.expirationSeconds !== undefined ? { expirationSeconds: req.expirationSeconds } : {}),
    },
  };
}

export type CsrState =
  | { phase: 'pending' }
  | { phase: 'approved' }
  | { phase: 'issued'; certPem: string }
  | { phase: 'denied' | 'failed'; reason: string; message: string };

/** Reads a CSR's conditions the way kubectl does: Denied or Failed end it; Approved plus a certificate is done. */
export function csrState(csr: k8s.V1CertificateSigningRequest): CsrState {
  const conditions = csr.status?.conditions ?? [];
  for (const type of ['Denied', 'Failed'] as const) {
    const c = conditions.find((x) => x.type === type && x.status !== 'False');
    if (c) {
      return {
        phase: type === 'Denied' ? 'denied' : 'failed',
        reason: c.reason ?? type,
        message: c.message ?? '',
      };
    }
  }
  if (!conditions.some((x) => x.type === 'Approved' && x.status !== 'False')) return { phase: 'pending' };
  const cert = csr.status?.certificate;
  // The generated client hands back the base64 string of the PEM bytes (format: byte).
  if (!cert) return { phase: 'approved' };
  return { phase: 'issued', certPem: Buffer.from(cert, 'base64').toString('utf8') };
}

export interface WaitOptions {
  read(): Promise<k8s.V1CertificateSigningRequest>;
  timeoutMs: number;
  pollMs?: number;
  onPhase?(phase: CsrState['phase'], elapsedMs: number): void;
  now?(): number;
  sleep?(ms: number): Promise<void>;
}

/** Polls until the CSR is issued (returns the certificate), denied or failed (throws), or time runs out. */
export async function waitForCertificate(csrName: string, opts: WaitOptions): Promise<string> {
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const started = now();
  let state: CsrState = { phase: 'pending' };
  for (;;) {
    state = csrState(await opts.read());
    opts.onPhase?.(state.phase, now() - started);
    if (state.phase === 'issued') return state.certPem;
    if (state.phase === 'denied' || state.phase === 'failed') {
      throw new DrawbridgeError(
        'ACCESS_DENIED',
        `certificate request ${csrName} was ${state.phase} (${state.reason})${state.message ? `: ${state.message}` : ''}`,
        'kubectl db ls shows the databases and database users your roles allow; ask an admin for a role if one is missing',
      );
    }
    if (now() - started >= opts.timeoutMs) break;
    await sleep(opts.pollMs ?? 500);
  }
  const waitingFor = state.phase === 'approved' ? 'the signed certificate' : 'a decision';
  throw new DrawbridgeError(
    'KUBE_ERROR',
    `certificate request ${csrName}: still waiting for ${waitingFor} after ${Math.round(opts.timeoutMs / 1000)}s`,
    `check that the drawbridge controller is running (kubectl get csr ${csrName}; kubectl -n drawbridge get pods)`,
  );
}

/**
 * Refuses an issued certificate unless it is for our own key and signed by the CA we trust for the
 * agents (the controller's, which also signs logins): whoever may write a CSR's status (a rogue or
 * misconfigured signer, a cluster admin's mistake) could otherwise hand us a certificate for someone
 * else's key, which would never work, or one from another CA, which we would store and present.
 */
export function checkIssuedCertificate(
  csrName: string,
  certPem: string,
  keyPem: string,
  caPem: string,
): void {
  const refuse = (what: string) =>
    new DrawbridgeError(
      'AUTHN_FAILED',
      `certificate request ${csrName}: the issued certificate ${what}; it was not stored`,
      `the certificate did not come from the drawbridge controller's signer as expected: ask your cluster admin ` +
        `who signs drawbridge.dev/database-client requests (kubectl get csr ${csrName} -o yaml), then log in again`,
    );
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch {
    throw refuse('is not a PEM certificate');
  }
  const ours = createPublicKey(keyPem).export({ type: 'spki', format: 'der' });
  if (!cert.publicKey.export({ type: 'spki', format: 'der' }).equals(ours)) {
    throw refuse('is for another key than the one this login made');
  }
  const cas = pemCertificates(caPem).map((pem) => new X509Certificate(pem));
  if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey))) {
    throw refuse(`is not signed by the agents' CA (issuer "${cert.issuer.replace(/\n/g, ', ')}")`);
  }
  if (Date.parse(cert.validTo) <= Date.now()) throw refuse(`expired at ${cert.validTo}`);
}
