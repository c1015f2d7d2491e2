// Who is connecting. From a client certificate: CN = user, O = groups (the Kubernetes convention), read
// from the certificate's DER subject structure (src/pki/subject-der.ts), the same reader the CSR signer
// checks each issued certificate with. From a ServiceAccount token: the TokenReview's username and groups.
import type { X509Certificate } from 'node:crypto';
import { DrawbridgeError } from '../errors.js';
import { type Subject, certificateSubject } from '../pki/subject-der.js';

export interface Identity {
  user: string;
  groups: string[];
  source: 'certificate' | 'token';
  /** When the credential stops being valid; sessions end then. */
  expiresAt?: Date;
  /** A certificate's notBefore: with expiresAt, how long it was issued for. */
  issuedAt?: Date;
  /** A token accepted only for the shared audience (spec.workloads.acceptSharedAudience): ends when that does. */
  sharedAudience?: boolean;
}

/**
 * What the identity needs of a peer certificate: TLSSocket.getPeerX509Certificate() has it, computed
 * natively when read; getPeerCertificate() would build a JS object of every field (~30 µs a connection).
 */
export type PeerX509 = Pick<X509Certificate, 'raw' | 'fingerprint256' | 'validFrom' | 'validTo'>;

export function identityFromCertificate(cert: PeerX509 | undefined): Identity {
  if (!cert) {
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      'no client certificate was presented',
      'log in first (kubectl db login NAME), or pass the certificate and key to your client',
    );
  }
  const { subject, expiresAt, issuedAt } = parsedOf(cert);
  const { commonName: user, organizations } = subject;
  const groups = [...organizations];
  if (!user) {
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      'the client certificate has an empty common name (CN = user name)',
    );
  }
  return {
    user,
    groups,
    source: 'certificate',
    expiresAt: new Date(expiresAt),
    issuedAt: new Date(issuedAt),
  };
}

/**
 * Parsed subjects and end of validity (ms) by certificate (SHA-256 of its DER, which OpenSSL computes).
 * A client reconnects with the same certificate, so it is read once (its DER copied out and its date
 * text parsed once too): per-connection garbage at a connect burst once grew V8's young generation
 * to its maximum, which the agent then held as RSS. Both are functions of the DER alone: nothing to
 * expire.
 */
const parsed = new Map<string, { subject: Subject; expiresAt: number; issuedAt: number }>();
const MAX_SUBJECTS = 1024;

function parsedOf(cert: PeerX509): { subject: Subject; expiresAt: number; issuedAt: number } {
  const key = cert.fingerprint256;
  let known = key ? parsed.get(key) : undefined;
  if (!known) {
    known = {
      subject: certificateSubject(cert.raw),
      expiresAt: Date.parse(cert.validTo),
      issuedAt: Date.parse(cert.validFrom),
    };
    if (key) {
      if (parsed.size >= MAX_SUBJECTS) parsed.delete(parsed.keys().next().value!);
      parsed.set(key, known);
    }
  }
  return known;
}

/** The seam for workload tokens; the operator provides a TokenReview-backed implementation. */
export interface TokenVerifier {
  verify(token: string): Promise<Identity>;
}

/** JWTs have three base64url parts; anything else sent as a password is not a token. */
export function looksLikeToken(password: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(password) && password.length > 40;
}
