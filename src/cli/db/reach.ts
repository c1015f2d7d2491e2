// What `kubectl db ls` shows: for each Database, the database users (and, for PostgreSQL, database
// names) the caller's roles allow, computed with the same access engine the agent and the CSR signer
// use, so the list never promises what a login would be refused.
import type { AccessRole, DatabaseUser } from '../../api/access.js';
import type { Database } from '../../api/database.js';
import type { Identity } from '../../authn/identity.js';
import { type BoundRole, bindRoles, checkAccess, type Policy } from '../../authz/engine.js';
import { type OnInvalid, matchLabels } from '../../authz/match.js';

export interface Reachable {
  database: Database;
  /** Allowed database users as the roles write them: names, `*` or globs. */
  dbUsers: string[];
  /** Database users a deny rule excludes from a wildcard or glob above. */
  exceptUsers: string[];
  /** Allowed database names (PostgreSQL only). */
  dbNames: string[];
  ttlMs: number;
}

function labelsMatch(
  selector: Record<string, string[]> | undefined,
  db: Database,
  onInvalid: OnInvalid = 'skip',
): boolean {
  return !!selector && matchLabels(selector, db.metadata.labels ?? {}, onInvalid).matched;
}

function union(values: Iterable<string[] | undefined>): string[] {
  return [...new Set([...values].flatMap((v) => v ?? []))].sort();
}

/** Deny rules that apply to this database: labels match, or the rule names no labels at all. */
function denyingRoles(roles: BoundRole[], db: Database): BoundRole[] {
  return roles.filter((r) => !r.deny.databaseLabels || labelsMatch(r.deny.databaseLabels, db, 'match'));
}

export function reachableFrom(identity: Identity, db: Database, policy: Policy): Reachable | undefined {
  const roles = bindRoles(identity, policy);
  const matching = roles.filter((r) => labelsMatch(r.allow.databaseLabels, db));
  const candidates = union(matching.map((r) => r.allow.databaseUsers));
  const dbUsers = candidates.filter(
    (dbUser) => checkAccess(identity, { database: db, dbUser }, policy, roles).allowed,
  );
  if (dbUsers.length === 0) return undefined;
  const patterns = dbUsers.some((u) => /[*?^]/.test(u));
  const exceptUsers = patterns ? union(denyingRoles(roles, db).map((r) => r.deny.databaseUsers)) : [];
  const dbNames =
    db.spec.protocol === 'postgres'
      ? union(matching.map((r) => r.allow.databaseNames)).filter(
          (n) => !union(denyingRoles(roles, db).map((r) => r.deny.databaseNames)).includes(n),
        )
      : [];
  return {
    database: db,
    dbUsers,
    exceptUsers,
    dbNames,
    ttlMs: Math.min(...roles.map((r) => r.maxSessionTTLms)),
  };
}

export interface NamespacePolicy {
  roles: readonly AccessRole[];
  users: readonly DatabaseUser[];
}

/**
 * The databases `identity` may reach. AccessRoles and DatabaseUsers apply to the Databases of their
 * own namespace, as the agent and the CSR signer read them.
 */
export function reachable(
  identity: Identity,
  databases: readonly Database[],
  policyOf: (namespace: string) => NamespacePolicy,
): Reachable[] {
  const out: Reachable[] = [];
  for (const db of databases) {
    const row = reachableFrom(identity, db, policyOf(db.metadata.namespace ?? 'default'));
    if (row) out.push(row);
  }
  return out.sort(
    (a, b) =>
      (a.database.metadata.namespace ?? '').localeCompare(b.database.metadata.namespace ?? '') ||
      a.database.metadata.name.localeCompare(b.database.metadata.name),
  );
}

/** `8h`, `1h30m`, `45m`: the largest units that say it exactly. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return '-';
  const total = Math.round(ms / 1000);
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  return [h ? `${h}h` : '', m ? `${m}m` : '', s || total === 0 ? `${s}s` : ''].join('');
}
