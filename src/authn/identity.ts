// Who is connecting. From a client certificate: CN = user, O = groups (the Kubernetes convention), read
// from the certificate's DER subject structure (src/pki/subject-der.ts), the same reader the CSR signer
// checks each issued certificate with. From a ServiceAccount token: the TokenReview's username and groups.
import type { PeerCertificate } from 'node:tls';
import { DrawbridgeError } from '../errors.js';
import { type Subject, certificateSubject } from '../pki/subject-der.js';

export interface Identity {
  user: string;
  groups: string[];
  source: 'certificate' | 'token';
  /** When the credential stops being valid; sessions end then. */
  expiresAt?: Date;
}

export function identityFromCertificate(cert: PeerCertificate | undefined): Identity {
  if (!cert?.raw) {
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      'no client certificate was presented',
      'log in first (kubectl db login NAME), or pass the certificate and key to your client',
    );
  }
  const { commonName: user, organizations } = subjectOf(cert);
  const groups = [...organizations];
  if (!user) {
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      'the client certificate has an empty common name (CN = user name)',
    );
  }
  return { user, groups, source: 'certificate', expiresAt: new Date(cert.valid_to) };
}

/**
 * Parsed subjects by certificate (SHA-256 of its DER, computed by Node for every peer certificate).
 * Parsing the whole certificate with @peculiar/asn1 allocates ~tens of KB per connection; at a
 * connect burst that garbage grew V8's young generation to its maximum, which the agent then held
 * as RSS (~30 KB per idle session in bench/postgres.sh). A client reconnects with the same
 * certificate, so it is parsed once. The subject is a function of the DER alone: nothing to expire.
 */
const subjects = new Map<string, Subject>();
const MAX_SUBJECTS = 1024;

function subjectOf(cert: PeerCertificate): Subject {
  const key = cert.fingerprint256;
  let subject = key ? subjects.get(key) : undefined;
  if (!subject) {
    subject = certificateSubject(cert.raw);
    if (key) {
      if (subjects.size >= MAX_SUBJECTS) subjects.delete(subjects.keys().next().value!);
      subjects.set(key, subject);
    }
  }
  return subject;
}

/** The seam for workload tokens; the operator provides a TokenReview-backed implementation. */
export interface TokenVerifier {
  verify(token: string): Promise<Identity>;
}

/** JWTs have three base64url parts; anything else sent as a password is not a token. */
export function looksLikeToken(password: string): boolean {
  return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(password) && password.length > 40;
}
