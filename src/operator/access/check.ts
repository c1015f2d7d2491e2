// What the controller can tell about access rules without a session: whether an AccessRole's patterns
// and templates are ones the access engine understands (a broken regex matches nothing, silently), and
// which Databases a role or a DatabaseUser reaches. Pure functions over parsed objects.
import type { AccessRole, AccessRule, DatabaseUser } from '../../api/access.js';
import { ACCESS_REASON, type AccessReason } from '../../api/access-status.js';
import { matchLabels, patternError } from '../../authz/match.js';
import { type ExpandedRule, type Traits, expandRule } from '../../authz/traits.js';

export interface Problem {
  reason: AccessReason;
  message: string;
}

const TEMPLATE = /^\{\{\s*(traits|internal|external)\.[A-Za-z0-9_]+\s*\}\}$/;

/** Why one value is not something the engine understands as its author meant, or undefined. */
function valueProblem(value: string): Problem | undefined {
  const inner = /\{\{.*?\}\}/.exec(value)?.[0];
  if (inner && !TEMPLATE.test(inner)) {
    return {
      reason: ACCESS_REASON.InvalidTemplate,
      message: `"${value}": templates are {{traits.NAME}} (or {{internal.NAME}}, {{external.NAME}})`,
    };
  }
  const starts = value.startsWith('^');
  const ends = value.endsWith('$');
  if (starts !== ends) {
    return {
      reason: ACCESS_REASON.InvalidPattern,
      message: `"${value}" is matched literally: a regular expression needs both ^ and $`,
    };
  }
  const err = starts ? patternError(value) : undefined;
  if (err) {
    return {
      reason: ACCESS_REASON.InvalidPattern,
      message:
        `"${value}" is not a valid regular expression (${err}): patterns run in linear time, as in RE2, ` +
        'so no backreferences, lookarounds or counted repetitions above {16}; until fixed it matches ' +
        'nothing in allow and everything in deny',
    };
  }
  return undefined;
}

function ruleProblems(rule: AccessRule, where: string): Problem[] {
  const out: Problem[] = [];
  const check = (values: readonly string[] | undefined, field: string) => {
    for (const v of values ?? []) {
      const p = valueProblem(v);
      if (p) out.push({ reason: p.reason, message: `${where}.${field}: ${p.message}` });
    }
  };
  for (const [key, v] of Object.entries(rule.databaseLabels ?? {})) {
    check(Array.isArray(v) ? v : [v], `databaseLabels.${key}`);
  }
  check(rule.databaseUsers, 'databaseUsers');
  check(rule.databaseNames, 'databaseNames');
  return out;
}

export function roleProblems(role: AccessRole): Problem[] {
  return [...ruleProblems(role.spec.allow, 'spec.allow'), ...ruleProblems(role.spec.deny, 'spec.deny')];
}

/** The allow rule grants a session on `db` to someone: its labels match and it names database users. */
function allows(rule: ExpandedRule, labels: Record<string, string>): boolean {
  return (
    !!rule.databaseLabels && !!rule.databaseUsers?.length && matchLabels(rule.databaseLabels, labels).matched
  );
}

/** A deny rule with labels only shuts `db` out entirely (the engine's denyReason without a request). */
function shutsOut(rule: ExpandedRule, labels: Record<string, string>): boolean {
  if (!rule.databaseLabels || rule.databaseUsers || rule.databaseNames || rule.redisCommands) return false;
  return matchLabels(rule.databaseLabels, labels, 'match').matched;
}

/** The role on its own reaches a Database with these labels (templates left as written: a count, not a promise). */
export function roleReaches(role: AccessRole, labels: Record<string, string>): boolean {
  const bound = { allow: expandRule(role.spec.allow, {}), deny: expandRule(role.spec.deny, {}) };
  // Unexpanded templates count as values here: the role grants someone, once traits fill them in.
  const allow = { ...bound.allow, databaseUsers: role.spec.allow.databaseUsers };
  return allows(allow, labels) && !shutsOut(bound.deny, labels);
}

/** The user's roles (those that exist), expanded with the user's traits. */
function boundRoles(user: DatabaseUser, roles: ReadonlyMap<string, AccessRole>) {
  const traits: Traits = user.spec.traits ?? {};
  return user.spec.roles
    .map((name) => roles.get(name))
    .filter((r): r is AccessRole => !!r)
    .map((r) => ({ allow: expandRule(r.spec.allow, traits), deny: expandRule(r.spec.deny, traits) }));
}

/** Some role of the user grants a Database with these labels and none shuts it out. */
export function userReaches(
  user: DatabaseUser,
  roles: ReadonlyMap<string, AccessRole>,
  labels: Record<string, string>,
): boolean {
  const bound = boundRoles(user, roles);
  return bound.some((r) => allows(r.allow, labels)) && !bound.some((r) => shutsOut(r.deny, labels));
}

/** How many AccessRoles and DatabaseUsers of a namespace reach a Database with these labels. */
export function accessCounts(
  policy: {
    roles: readonly AccessRole[];
    users: readonly DatabaseUser[];
    invalidRoles?: ReadonlySet<string>;
  },
  labels: Record<string, string>,
): { users: number; roles: number } {
  const byName = new Map(policy.roles.map((r) => [r.metadata.name, r]));
  // Those bound to an invalid role are denied every session (authz/policy), so they reach nothing.
  const denied = (u: DatabaseUser) => u.spec.roles.some((name) => policy.invalidRoles?.has(name));
  return {
    roles: policy.roles.filter((r) => roleReaches(r, labels)).length,
    users: policy.users.filter((u) => !denied(u) && userReaches(u, byName, labels)).length,
  };
}
