// Whether to sign a CertificateSigningRequest for signerName drawbridge.dev/database-client: a pure
// function of the CSR and the access rules, so every rule is unit-tested. The API server fills in
// spec.username and spec.groups with who asked; the certificate may only name that person, and only
// when an AccessRole bound to them allows the database named in the CSR's annotation.
import { type Database as DatabaseT, Database } from '../../api/database.js';
import { formatIssue } from '../../api/validate.js';
import { parseAs } from '../../kube/parse.js';
import type { Identity } from '../../authn/identity.js';
import { type Policy, bindRoles, checkAccess } from '../../authz/engine.js';
import { errorMessage } from '../../errors.js';
import { MAX_CSR_PEM, parseCsr } from '../../pki/ca.js';
import type { Subject } from '../../pki/subject.js';
import type { KubeObject } from '../../kube/types.js';
import { ANNOTATION_DATABASE, ANNOTATION_DB_USER } from '../names.js';

export const CSR_REASON = {
  Approved: 'AccessAllowed',
  MissingDatabase: 'MissingDatabaseAnnotation',
  DatabaseNotFound: 'DatabaseNotFound',
  DatabaseInvalid: 'DatabaseInvalid',
  SubjectMismatch: 'SubjectMismatch',
  UnsupportedUsages: 'UnsupportedUsages',
  InvalidRequest: 'InvalidRequest',
  AccessDenied: 'AccessDenied',
  SigningFailed: 'SigningFailed',
  IssuedSubjectMismatch: 'IssuedSubjectMismatch',
} as const;
export type CsrReason = (typeof CSR_REASON)[keyof typeof CSR_REASON];

export interface CsrRequest {
  username: string;
  groups: string[];
  requestPem: string;
  expirationSeconds?: number;
  usages: string[];
  annotations: Record<string, string>;
}

export interface AccessSource {
  database(namespace: string, name: string): KubeObject | undefined;
  /** The AccessRoles and DatabaseUsers of a namespace, already validated. */
  policy(namespace: string): Policy;
}

export type CsrDecision =
  | { approved: true; reason: CsrReason; message: string; validSeconds: number; subject: Subject }
  | { approved: false; reason: CsrReason; message: string };

const ALLOWED_USAGES = new Set(['client auth', 'digital signature', 'key encipherment']);

/** A CSR condition (and its Event) quotes rules a tenant wrote: a 1 MiB role must not become a 1 MiB status. */
const MAX_MESSAGE = 2048;

const deny = (reason: CsrReason, message: string): CsrDecision => ({
  approved: false,
  reason,
  message: message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE - 1)}…` : message,
});

export function decideCsr(req: CsrRequest, source: AccessSource): CsrDecision {
  const ref = req.annotations[ANNOTATION_DATABASE] ?? '';
  const m = /^([a-z0-9][-a-z0-9]*)\/([a-z0-9][-a-z0-9.]*)$/.exec(ref);
  if (!m) {
    return deny(
      CSR_REASON.MissingDatabase,
      `annotate the CSR with ${ANNOTATION_DATABASE}: NAMESPACE/NAME (kubectl db login does this)`,
    );
  }
  const [, namespace, name] = m as unknown as [string, string, string];
  if (!req.usages.includes('client auth') || req.usages.some((u) => !ALLOWED_USAGES.has(u))) {
    return deny(
      CSR_REASON.UnsupportedUsages,
      `usages ${JSON.stringify(req.usages)}: only "client auth" (with "digital signature", "key encipherment") is signed`,
    );
  }
  if (req.requestPem.length > MAX_CSR_PEM) {
    return deny(
      CSR_REASON.InvalidRequest,
      `spec.request is ${req.requestPem.length} bytes: the signer reads CSRs of up to ${MAX_CSR_PEM} bytes; ` +
        'request one with only a CN and Os, as kubectl db login does (under 1 KiB)',
    );
  }
  let subject: Subject;
  try {
    subject = parseCsr(req.requestPem);
  } catch (err) {
    return deny(CSR_REASON.InvalidRequest, `spec.request is not a PEM PKCS#10 request: ${errorMessage(err)}`);
  }
  const extraGroups = subject.organizations.filter((o) => !req.groups.includes(o));
  if (subject.commonName !== req.username || extraGroups.length) {
    return deny(
      CSR_REASON.SubjectMismatch,
      `the CSR subject (CN=${subject.commonName}, O=${JSON.stringify(subject.organizations)}) must name the requester ` +
        `"${req.username}" and only groups they are in (${JSON.stringify(req.groups)})`,
    );
  }
  const raw = source.database(namespace, name);
  if (!raw) return deny(CSR_REASON.DatabaseNotFound, `Database ${namespace}/${name} does not exist`);
  const parsed = parseAs(Database, 'Database', raw);
  if (!parsed.success) {
    return deny(
      CSR_REASON.DatabaseInvalid,
      `Database ${namespace}/${name} is invalid: ${parsed.error.issues.map(formatIssue).join('; ')}`,
    );
  }
  const identity: Identity = { user: req.username, groups: req.groups, source: 'certificate' };
  const access = allowedUser(
    identity,
    parsed.data,
    source.policy(namespace),
    req.annotations[ANNOTATION_DB_USER],
  );
  if (!access.allowed) return deny(CSR_REASON.AccessDenied, access.reason);
  const roleTtl = Math.floor(access.ttlMs / 1000);
  const validSeconds = Math.min(req.expirationSeconds ?? roleTtl, roleTtl);
  return {
    approved: true,
    reason: CSR_REASON.Approved,
    message: `${access.reason} for Database ${namespace}/${name} as ${access.dbUser}; valid ${validSeconds}s (role maxSessionTTL ${roleTtl}s)`,
    validSeconds,
    subject,
  };
}

type UserAccess =
  { allowed: true; reason: string; ttlMs: number; dbUser: string } | { allowed: false; reason: string };

/**
 * Database users tried when the CSR names none. Each try evaluates every rule of the person's roles,
 * which the namespace's tenant writes: trying each of a role's 20,000 databaseUsers against a deny of
 * `*` held the controller's event loop (every namespace's CSRs and reconciles) for 79 s per CSR.
 */
export const MAX_DB_USER_CANDIDATES = 16;

/**
 * The requested database user, or else the first database user any bound role allows: a certificate
 * is only worth signing if it can open at least one session.
 */
function allowedUser(
  identity: Identity,
  database: DatabaseT,
  policy: Policy,
  requested?: string,
): UserAccess {
  const roles = bindRoles(identity, policy);
  const named = requested ? [requested] : [...new Set(roles.flatMap((r) => r.allow.databaseUsers ?? []))];
  if (named.length === 0) named.push('*');
  const candidates = named.slice(0, MAX_DB_USER_CANDIDATES);
  let first: string | undefined;
  for (const dbUser of candidates) {
    const d = checkAccess(identity, { database, dbUser }, policy, roles);
    if (d.allowed)
      return { allowed: true, reason: d.reason, ttlMs: d.ttlMs, dbUser: `database user "${dbUser}"` };
    first ??= d.reason;
  }
  // First, so that cutting a long reason (the rules it quotes) keeps the fix.
  const tried =
    named.length > candidates.length
      ? `tried ${candidates.length} of the ${named.length} database users your roles name; for another, ` +
        `annotate the CSR with ${ANNOTATION_DB_USER}: NAME (kubectl db login --db-user NAME): `
      : '';
  return { allowed: false, reason: tried + first! };
}
