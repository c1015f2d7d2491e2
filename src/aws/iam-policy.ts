// Turns grants into IAM policy documents that fit AWS's limits, which IAM enforces only by failing
// (and emulators not at all), so they are enforced here:
//   - a role's inline policies share 10,240 characters (a user's 2,048), whitespace not counted;
//   - a customer-managed policy holds 6,144 characters, and a role has a limited number attached (10
//     by default).
// Order of resort: compact (one statement per distinct action set, resources merged), then widen
// resources to per-account/region wildcards where the matchers allow it, then spread the statements
// over customer-managed policies; when even that does not fit, PolicySizeExceeded says by how much.
import { AwsError, AwsReason } from './errors.js';
import type { Grant } from './iam-statements.js';

export interface Statement {
  Effect: 'Allow';
  Action: string | string[];
  Resource: string | string[];
}
export interface PolicyDocument {
  Version: '2012-10-17';
  Statement: Statement[];
}

export const IAM_LIMITS = {
  roleInline: 10_240,
  userInline: 2_048,
  managedPolicy: 6_144,
  managedPoliciesPerRole: 10,
} as const;

export interface PolicyLimits {
  /** Characters left for our inline policy (the aggregate limit minus other inline policies). */
  inlineRoom: number;
  /** Customer-managed policies we may attach (the quota minus policies attached by others). */
  managedSlots: number;
  managedPolicySize?: number;
}

export interface PolicyPlan {
  /** The inline policy, or undefined when the statements went to managed policies. */
  inline?: PolicyDocument;
  managed: PolicyDocument[];
  /** Whether per-account/region wildcards had to be used. */
  widened: boolean;
  /** Size of the compacted statements, as IAM counts it. */
  size: number;
}

/** Policy size as IAM counts it: the JSON without whitespace. */
export function policySize(doc: PolicyDocument): number {
  return JSON.stringify(doc).replace(/\s/g, '').length;
}

export function document(statements: Statement[]): PolicyDocument {
  return { Version: '2012-10-17', Statement: statements };
}

const one = (xs: string[]): string | string[] => (xs.length === 1 ? xs[0]! : xs);

/** Merges grants: resources with identical action sets share one statement. Deterministic order. */
export function compact(grants: Grant[], widen = false): Statement[] {
  const actionsByResource = new Map<string, Set<string>>();
  for (const g of grants) {
    const resource = widen && g.wildcard ? g.wildcard : g.resource;
    const set = actionsByResource.get(resource) ?? new Set<string>();
    for (const a of g.actions) set.add(a);
    actionsByResource.set(resource, set);
  }
  // A "*" resource already covers every narrower resource for the same action.
  const global = actionsByResource.get('*') ?? new Set<string>();
  const resourcesByActions = new Map<string, string[]>();
  for (const [resource, actions] of actionsByResource) {
    const left = resource === '*' ? [...actions] : [...actions].filter((a) => !global.has(a));
    if (left.length === 0) continue;
    const k = left.sort().join(',');
    resourcesByActions.set(k, [...(resourcesByActions.get(k) ?? []), resource]);
  }
  return [...resourcesByActions.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([actions, resources]) => ({
      Effect: 'Allow',
      Action: one(actions.split(',')),
      Resource: one(resources.sort()),
    }));
}

/** Splits statements into managed policies of at most `max` characters each (first fit, in order). */
export function pack(statements: Statement[], max: number): PolicyDocument[] {
  const docs: Statement[][] = [];
  const fits = (stmts: Statement[]) => policySize(document(stmts)) <= max;
  for (const stmt of statements.flatMap((s) => splitStatement(s, max))) {
    const home = docs.find((d) => fits([...d, stmt]));
    if (home) home.push(stmt);
    else docs.push([stmt]);
  }
  return docs.map(document);
}

/** A statement too big for one policy becomes several with the same actions. */
function splitStatement(stmt: Statement, max: number): Statement[] {
  if (policySize(document([stmt])) <= max) return [stmt];
  const resources = Array.isArray(stmt.Resource) ? stmt.Resource : [stmt.Resource];
  const out: Statement[] = [];
  let chunk: string[] = [];
  for (const r of resources) {
    const next = { ...stmt, Resource: [...chunk, r] };
    if (chunk.length > 0 && policySize(document([next])) > max) {
      out.push({ ...stmt, Resource: one(chunk) });
      chunk = [r];
    } else chunk.push(r);
  }
  out.push({ ...stmt, Resource: one(chunk) });
  return out;
}

/** Chooses the smallest form that fits: inline, widened inline, managed, widened managed. */
export function planPolicy(grants: Grant[], limits: PolicyLimits): PolicyPlan {
  const managedMax = limits.managedPolicySize ?? IAM_LIMITS.managedPolicy;
  const exact = compact(grants);
  const canWiden = grants.some((g) => g.wildcard && g.wildcard !== g.resource);
  const forms = canWiden ? [exact, compact(grants, true)] : [exact];
  for (const [i, stmts] of forms.entries()) {
    const doc = document(stmts);
    const size = policySize(doc);
    if (size <= limits.inlineRoom) return { inline: doc, managed: [], widened: i === 1, size };
  }
  for (const [i, stmts] of forms.entries()) {
    const managed = pack(stmts, managedMax);
    // A statement of one resource longer than a policy stays too long: AWS would refuse that policy.
    if (managed.length <= limits.managedSlots && managed.every((d) => policySize(d) <= managedMax)) {
      return { managed, widened: i === 1, size: policySize(document(stmts)) };
    }
  }
  const smallest = forms[forms.length - 1]!;
  const size = policySize(document(smallest));
  const room = Math.max(limits.inlineRoom, limits.managedSlots * managedMax);
  throw new AwsError(
    AwsReason.PolicySizeExceeded,
    `the IAM policy Drawbridge needs is ${size} characters after compaction; the role has room for ${room} ` +
      `(${limits.inlineRoom} inline, ${limits.managedSlots} managed policies of ${managedMax}): ${size - room} more needed`,
    'split the databases across IAM roles with assumeRoleArn on the matchers, use matchers without tag filters so ' +
      'per-region wildcards apply, raise the "managed policies per role" quota, or manage the policy yourself ' +
      '(e.g. rds-db:connect on "*") and turn IAM bootstrap off',
    { code: 'AWS_ERROR' },
  );
}
