// The access engine: pure functions of (identity, database, request, policy) → decision with a reason.
// Semantics follow Teleport RBAC: deny wins; within one role every allow matcher must match; roles
// combine with OR; the session TTL is the smallest maxSessionTTL among the person's roles.
import type { AccessRole, DatabaseUser, Subject } from '../api/access.js';
import type { Database } from '../api/database.js';
import { parseDuration } from '../api/runtime.js';
import type { Identity } from '../authn/identity.js';
import { matchAny, matchLabels, patternError } from './match.js';
import { type ExpandedRule, type Traits, expandRule } from './traits.js';

export interface Policy {
  roles: readonly AccessRole[];
  users: readonly DatabaseUser[];
  /**
   * Roles present but invalid (stored before a schema bound tightened, or a check only the controller
   * makes): the names of those the person is bound to. Their deny rules cannot be read, so a session of
   * anyone bound to one is denied until it is fixed rather than decided as if it did not exist.
   */
  invalidRoles?: ReadonlySet<string>;
}

export interface AccessRequest {
  database: Database;
  /** Database user to log in as (PostgreSQL startup `user`, Redis AUTH user or `default`). */
  dbUser: string;
  /** PostgreSQL database name; undefined for protocols without one. */
  dbName?: string;
}

/** A role bound to the person, with its rules expanded for their traits. */
export interface BoundRole {
  name: string;
  /** The role is invalid: it denies every session of the person (Policy.invalidRoles). */
  invalid?: true;
  allow: ExpandedRule;
  deny: ExpandedRule;
  maxSessionTTLms: number;
}

export type Decision =
  | { allowed: true; reason: string; roles: BoundRole[]; allowedBy: BoundRole[]; ttlMs: number }
  | { allowed: false; reason: string; role?: string; rule?: 'allow' | 'deny' };

function subjectMatches(subject: Subject, identity: Identity): boolean {
  switch (subject.kind) {
    case 'User':
      return subject.name === identity.user;
    case 'Group':
      return identity.groups.includes(subject.name);
    case 'ServiceAccount':
      return identity.user === `system:serviceaccount:${subject.namespace}:${subject.name}`;
  }
}

/** The roles bound to `identity` through DatabaseUsers, with merged traits expanded into them. */
export function bindRoles(identity: Identity, policy: Policy): BoundRole[] {
  const traits: Record<string, string[]> = {};
  const names = new Set<string>();
  for (const u of policy.users) {
    if (!u.spec.subjects.some((s) => subjectMatches(s, identity))) continue;
    u.spec.roles.forEach((r) => names.add(r));
    for (const [k, v] of Object.entries(u.spec.traits ?? {})) {
      if (v) traits[k] = [...new Set([...(traits[k] ?? []), ...v])];
    }
  }
  const byName = new Map(policy.roles.map((r) => [r.metadata.name, r]));
  const bound: BoundRole[] = [];
  for (const name of names) {
    const role = byName.get(name);
    if (role) bound.push(bindRole(role, traits));
    else if (policy.invalidRoles?.has(name))
      bound.push({ name, invalid: true, allow: {}, deny: {}, maxSessionTTLms: 0 });
    // Otherwise a DatabaseUser names a missing role: it grants nothing; the operator reports it.
  }
  return bound;
}

function bindRole(role: AccessRole, traits: Traits): BoundRole {
  return {
    name: role.metadata.name,
    allow: expandRule(role.spec.allow, traits),
    deny: expandRule(role.spec.deny, traits),
    maxSessionTTLms: parseDuration(role.spec.options.maxSessionTTL),
  };
}

function labelsOf(db: Database): Record<string, string> {
  return db.metadata.labels ?? {};
}

/** Why a deny rule ends the session, or undefined. A rule with only redisCommands denies commands, not sessions. */
export function denyReason(rule: ExpandedRule, req: AccessRequest): string | undefined {
  const scoped = rule.databaseUsers || rule.databaseNames || rule.redisCommands;
  if (!rule.databaseLabels && !scoped) return undefined;
  // 'match': a deny pattern the engine cannot evaluate denies (match.ts).
  if (rule.databaseLabels && !matchLabels(rule.databaseLabels, labelsOf(req.database), 'match').matched)
    return undefined;
  const user = rule.databaseUsers ? matchAny(rule.databaseUsers, req.dbUser, 'match') : undefined;
  if (user !== undefined)
    return `database user "${req.dbUser}" matches deny.databaseUsers "${user}"${unreadable(user)}`;
  const name =
    rule.databaseNames && req.dbName !== undefined
      ? matchAny(rule.databaseNames, req.dbName, 'match')
      : undefined;
  if (name !== undefined)
    return `database name "${req.dbName}" matches deny.databaseNames "${name}"${unreadable(name)}`;
  if (!scoped) return `database labels match deny.databaseLabels`;
  return undefined;
}

function unreadable(pattern: string): string {
  const err = patternError(pattern);
  return err ? ` (a pattern that cannot be evaluated, so it denies: ${err}; fix the role)` : '';
}

/** Why an allow rule does not grant the request, or undefined when it does. */
function allowMismatch(rule: ExpandedRule, req: AccessRequest): string | undefined {
  if (!rule.databaseLabels) return 'allow.databaseLabels is empty';
  const labels = matchLabels(rule.databaseLabels, labelsOf(req.database));
  if (!labels.matched) return labels.mismatch;
  if (!rule.databaseUsers || !matchAny(rule.databaseUsers, req.dbUser)) {
    return `database user "${req.dbUser}" is not in allow.databaseUsers ${JSON.stringify(rule.databaseUsers ?? [])}`;
  }
  if (req.dbName !== undefined && (!rule.databaseNames || !matchAny(rule.databaseNames, req.dbName))) {
    return `database name "${req.dbName}" is not in allow.databaseNames ${JSON.stringify(rule.databaseNames ?? [])}`;
  }
  return undefined;
}

function describe(req: AccessRequest): string {
  const name = req.dbName !== undefined ? ` database name "${req.dbName}"` : '';
  return `access to ${req.database.metadata.name} as database user "${req.dbUser}"${name}`;
}

/**
 * Decides whether `identity` may open a session; evaluated on every new session and on policy change.
 * `roles`: bindRoles(identity, policy) when the caller already has them (several requests, one person).
 */
export function checkAccess(
  identity: Identity,
  req: AccessRequest,
  policy: Policy,
  roles: BoundRole[] = bindRoles(identity, policy),
): Decision {
  if (roles.length === 0) {
    return {
      allowed: false,
      reason: `${describe(req)} denied: user "${identity.user}" (groups ${JSON.stringify(identity.groups)}) is not a subject of any DatabaseUser`,
    };
  }
  for (const role of roles) {
    const why = role.invalid
      ? `the role is invalid, so its deny rules cannot be read (its Valid condition names the fields to fix)`
      : denyReason(role.deny, req);
    if (why)
      return {
        allowed: false,
        reason: `${describe(req)} denied by role "${role.name}": ${why}`,
        role: role.name,
        rule: 'deny',
      };
  }
  const allowedBy = roles.filter((r) => allowMismatch(r.allow, req) === undefined);
  if (allowedBy.length === 0) {
    const details = roles.map((r) => `role "${r.name}": ${allowMismatch(r.allow, req)}`).join('; ');
    return {
      allowed: false,
      reason: `${describe(req)} denied: no role allows it (${details})`,
      rule: 'allow',
    };
  }
  const ttlMs = Math.min(...roles.map((r) => r.maxSessionTTLms));
  return {
    allowed: true,
    reason: `allowed by role${allowedBy.length > 1 ? 's' : ''} ${allowedBy.map((r) => `"${r.name}"`).join(', ')}`,
    roles,
    allowedBy,
    ttlMs,
  };
}

/** The signer's backdated notBefore (60 s) and rounding. */
const CERTIFICATE_SLACK_MS = 120_000;

/**
 * Why a client certificate may not open a session its roles allow for `ttlMs`, or undefined. In a
 * cluster the controller signs a certificate for at most the maxSessionTTL of the roles of the
 * namespace it was requested for, and every agent trusts it: one issued for longer than the roles
 * deciding here allow was issued under another namespace's roles (a tenant's, with a TTL of a year),
 * and would outlive what this namespace's roles promise (a person removed from a group keeps it).
 */
export function certificateOutlivesRoles(identity: Identity, ttlMs: number): string | undefined {
  if (identity.source !== 'certificate' || !identity.issuedAt || !identity.expiresAt) return undefined;
  const lifetimeMs = identity.expiresAt.getTime() - identity.issuedAt.getTime();
  if (!(lifetimeMs > ttlMs + CERTIFICATE_SLACK_MS)) return undefined;
  const h = (ms: number) => `${Math.round(ms / 360_000) / 10}h`;
  return (
    `the client certificate was issued for ${h(lifetimeMs)}, longer than the maxSessionTTL (${h(ttlMs)}) ` +
    "of the roles that decide here: it was issued for another Database's roles"
  );
}
