// Which namespaces' AWS Databases the IAM policy covers when all of them do not fit the role. The
// policy is one per cluster and its room is AWS's (IAM_LIMITS); Databases are written per namespace,
// by whoever holds that namespace. Failing the whole policy would let one namespace's Databases (a few
// with long identifiers suffice) turn every namespace's CredentialsReady False and stop IAM bootstrap
// for all. So namespaces go in smallest first while the policy fits, and only those left out are told.
import { AwsError, AwsReason, isAwsError } from '../../aws/errors.js';
import { IAM_LIMITS, planPolicy } from '../../aws/iam-policy.js';
import { requiredGrants } from '../../aws/iam-statements.js';
import type { AwsMatcher } from '../../api/controller-config.js';
import { type AwsDatabase, databaseKey } from './databases.js';

const LIMITS = { inlineRoom: IAM_LIMITS.roleInline, managedSlots: IAM_LIMITS.managedPoliciesPerRole };

function fits(databases: AwsDatabase[], matchers: AwsMatcher[]): boolean {
  try {
    planPolicy(requiredGrants({ databases, matchers, defaultAccount: '*' }), LIMITS);
    return true;
  } catch (err) {
    if (isAwsError(err, AwsReason.PolicySizeExceeded)) return false;
    throw err;
  }
}

/** `included`: the Databases the policy is planned for (sorted as given); `left`: the rest, by key, and why. */
export function fitByNamespace(
  databases: AwsDatabase[],
  matchers: AwsMatcher[],
): { included: AwsDatabase[]; left: Map<string, AwsError> } {
  if (fits(databases, matchers)) return { included: databases, left: new Map() };
  const byNamespace = new Map<string, AwsDatabase[]>();
  for (const db of databases) {
    const ns = db.metadata.namespace ?? '';
    byNamespace.set(ns, [...(byNamespace.get(ns) ?? []), db]);
  }
  const size = (dbs: AwsDatabase[]) =>
    JSON.stringify(requiredGrants({ databases: dbs, matchers: [], defaultAccount: '*' })).length;
  const groups = [...byNamespace]
    .map(([namespace, dbs]) => ({ namespace, dbs, size: size(dbs) }))
    .sort((a, b) => a.size - b.size || a.namespace.localeCompare(b.namespace));
  const included: AwsDatabase[] = [];
  const left = new Map<string, AwsError>();
  for (const g of groups) {
    if (fits([...included, ...g.dbs], matchers)) {
      included.push(...g.dbs);
      continue;
    }
    const err = new AwsError(
      AwsReason.PolicySizeExceeded,
      `the IAM policy for the ${g.dbs.length} AWS Database(s) of namespace ${g.namespace} (~${g.size} ` +
        `characters) does not fit beside the other namespaces' in the role's room (${LIMITS.inlineRoom} ` +
        `inline, ${LIMITS.managedSlots} managed policies); the other namespaces' are covered`,
      'give this namespace an IAM role of its own (spec.aws.assumeRoleArn), shorten its Databases, or ' +
        'manage the policy yourself (e.g. rds-db:connect on "*") and turn IAM bootstrap off',
      { code: 'AWS_ERROR' },
    );
    for (const db of g.dbs) left.set(databaseKey(db), err);
  }
  const order = new Map(databases.map((d, i) => [d, i]));
  return { included: included.sort((a, b) => order.get(a)! - order.get(b)!), left };
}
