import { describe, expect, it } from 'vitest';
import { Database } from '../../../src/api/database.js';
import { AwsReason, isAwsError } from '../../../src/aws/errors.js';
import { IAM_LIMITS, compact, document, pack, planPolicy, policySize } from '../../../src/aws/iam-policy.js';
import { requiredGrants, type PolicyInputs } from '../../../src/aws/iam-statements.js';
import type { AwsMatcher } from '../../../src/api/controller-config.js';
import { ACCOUNT, databases, resourceId } from './fixtures.js';

const roleLimits = { inlineRoom: IAM_LIMITS.roleInline, managedSlots: IAM_LIMITS.managedPoliciesPerRole };
const taggedMatcher: AwsMatcher = {
  types: ['rds', 'redshift'],
  regions: ['us-east-1'],
  tags: { env: 'prod' },
};
const allMatcher: AwsMatcher = { types: ['rds', 'redshift'], regions: ['us-east-1'], tags: { '*': '*' } };

function inputs(over: Partial<PolicyInputs>): PolicyInputs {
  return { databases: [], matchers: [], defaultAccount: ACCOUNT, ...over };
}

function resources(plan: ReturnType<typeof planPolicy>): string[] {
  const docs = plan.inline ? [plan.inline] : plan.managed;
  return docs.flatMap((d) =>
    d.Statement.flatMap((s) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource])),
  );
}

describe('IAM policy for N databases', () => {
  it.each([
    // [type, count, matcher, expected form]
    ['rds', 1, taggedMatcher, 'inline'],
    ['rds', 100, taggedMatcher, 'inline'],
    ['rds', 300, taggedMatcher, 'managed'],
    ['rds', 1000, allMatcher, 'inline-widened'],
    ['redshift', 100, taggedMatcher, 'managed'],
  ] as const)('%s × %i (%o) → %s, every document within its limit', (type, n, matcher, form) => {
    const plan = planPolicy(
      requiredGrants(inputs({ databases: databases(type, n), matchers: [matcher] })),
      roleLimits,
    );
    if (plan.inline) expect(policySize(plan.inline)).toBeLessThanOrEqual(IAM_LIMITS.roleInline);
    for (const doc of plan.managed) expect(policySize(doc)).toBeLessThanOrEqual(IAM_LIMITS.managedPolicy);
    expect(plan.managed.length).toBeLessThanOrEqual(IAM_LIMITS.managedPoliciesPerRole);
    const got = plan.inline ? (plan.widened ? 'inline-widened' : 'inline') : 'managed';
    expect(got).toBe(form);
    if (!plan.widened && type === 'rds') {
      // Exact grants: every database's resource ID is present, nothing wider.
      expect(resources(plan)).toContain(
        `arn:aws:rds-db:us-east-1:${ACCOUNT}:dbuser:${resourceId('db', `rds-db-${n - 1}`)}/*`,
      );
      expect(resources(plan)).not.toContain(`arn:aws:rds-db:us-east-1:${ACCOUNT}:dbuser:*/*`);
    }
  });

  it('widens only where a matcher selects every database of that type, region and account', () => {
    const dbs = [...databases('rds', 1000), ...databases('rds', 3, 'eu-west-1')];
    const plan = planPolicy(requiredGrants(inputs({ databases: dbs, matchers: [allMatcher] })), roleLimits);
    const rs = resources(plan);
    expect(rs).toContain(`arn:aws:rds-db:us-east-1:${ACCOUNT}:dbuser:*/*`);
    // eu-west-1 is not covered by the matcher: those three stay exact.
    expect(rs).toContain(`arn:aws:rds-db:eu-west-1:${ACCOUNT}:dbuser:${resourceId('db', 'rds-db-0')}/*`);
    expect(rs.filter((r) => r.startsWith('arn:aws:rds-db:us-east-1')).length).toBe(1);
  });

  it('is deterministic: the same inputs give byte-identical documents (re-running changes nothing)', () => {
    const dbs = databases('redshift', 40);
    const a = planPolicy(requiredGrants(inputs({ databases: dbs, matchers: [taggedMatcher] })), roleLimits);
    const b = planPolicy(
      requiredGrants(inputs({ databases: [...dbs].reverse(), matchers: [taggedMatcher] })),
      roleLimits,
    );
    expect(JSON.stringify(b)).toBe(JSON.stringify(a));
  });

  it('shrinks when databases are removed', () => {
    const all = databases('rds', 50);
    const big = planPolicy(requiredGrants(inputs({ databases: all, matchers: [taggedMatcher] })), roleLimits);
    const small = planPolicy(
      requiredGrants(inputs({ databases: all.slice(0, 10), matchers: [taggedMatcher] })),
      roleLimits,
    );
    expect(small.size).toBeLessThan(big.size);
    expect(resources(small).filter((r) => r.includes('rds-db:')).length).toBe(10);
  });

  it.each([
    ['rds', 1000],
    ['redshift', 1000],
  ] as const)('%s × %i behind a tag filter: PolicySizeExceeded with the room needed', (type, n) => {
    const grants = requiredGrants(inputs({ databases: databases(type, n), matchers: [taggedMatcher] }));
    let caught: unknown;
    try {
      planPolicy(grants, roleLimits);
    } catch (err) {
      caught = err;
    }
    expect(isAwsError(caught, AwsReason.PolicySizeExceeded)).toBe(true);
    const message = (caught as Error).message;
    const [, size, room, more] = /is (\d+) characters.*room for (\d+).*: (\d+) more needed/.exec(message)!;
    expect(Number(size) - Number(room)).toBe(Number(more));
    expect(Number(more)).toBeGreaterThan(0);
    expect((caught as { hint: string }).hint).toMatch(/assumeRoleArn/);
  });

  it('honours the smaller user limit and the room other inline policies use', () => {
    // The seeds: a user policy holds about 20 RDS databases, a role policy about 100.
    const grants = requiredGrants(inputs({ databases: databases('rds', 40), matchers: [taggedMatcher] }));
    expect(planPolicy(grants, roleLimits).inline).toBeDefined();
    expect(planPolicy(grants, { inlineRoom: IAM_LIMITS.userInline, managedSlots: 1 }).inline).toBeUndefined();
    expect(
      planPolicy(grants, { inlineRoom: IAM_LIMITS.roleInline - 8_000, managedSlots: 1 }).inline,
    ).toBeUndefined();
  });
});

describe('compaction', () => {
  it('merges actions per resource and resources per action set; "*" absorbs narrower grants', () => {
    const stmts = compact([
      { actions: ['rds:DescribeDBInstances'], resource: '*' },
      { actions: ['rds:DescribeDBInstances'], resource: 'arn:x' },
      { actions: ['a:One'], resource: 'arn:1' },
      { actions: ['a:One'], resource: 'arn:2' },
      { actions: ['a:Two'], resource: 'arn:2' },
    ]);
    expect(stmts).toEqual([
      { Effect: 'Allow', Action: 'a:One', Resource: 'arn:1' },
      { Effect: 'Allow', Action: ['a:One', 'a:Two'], Resource: 'arn:2' },
      { Effect: 'Allow', Action: 'rds:DescribeDBInstances', Resource: '*' },
    ]);
  });

  it('splits one oversized statement across managed policies', () => {
    const resourcesList = Array.from(
      { length: 400 },
      (_, i) => `arn:aws:rds-db:us-east-1:${ACCOUNT}:dbuser:db-${i}/*`,
    );
    const docs = pack(
      [{ Effect: 'Allow', Action: 'rds-db:connect', Resource: resourcesList }],
      IAM_LIMITS.managedPolicy,
    );
    expect(docs.length).toBeGreaterThan(1);
    for (const d of docs) expect(policySize(d)).toBeLessThanOrEqual(IAM_LIMITS.managedPolicy);
    expect(docs.flatMap((d) => d.Statement.flatMap((s) => s.Resource))).toEqual(resourcesList);
  });

  it('counts size without whitespace, as IAM does', () => {
    const doc = document([{ Effect: 'Allow', Action: 'a:B', Resource: '*' }]);
    expect(policySize(doc)).toBe(JSON.stringify(doc).length);
    expect(policySize(doc)).toBe(JSON.stringify(doc, null, 2).replace(/\s/g, '').length);
  });
});

describe('requiredGrants', () => {
  it('covers connect, discovery, assume-role and managed-user permissions', () => {
    const [rg] = databases('elasticache', 1);
    rg!.spec.auth.type = 'elasticache-managed';
    const grants = requiredGrants(
      inputs({
        databases: [rg!],
        matchers: [
          { ...allMatcher, types: ['elasticache'] },
          { ...allMatcher, types: ['redshift'], assumeRoleArn: `arn:aws:iam::${ACCOUNT}:role/cache-access` },
        ],
      }),
    );
    const has = (action: string, resource: string) =>
      grants.some((g) => g.actions.includes(action) && g.resource === resource);
    expect(
      has(
        'elasticache:Connect',
        `arn:aws:elasticache:us-east-1:${ACCOUNT}:replicationgroup:elasticache-db-0`,
      ),
    ).toBe(true);
    expect(has('elasticache:Connect', `arn:aws:elasticache:us-east-1:${ACCOUNT}:user:*`)).toBe(true);
    expect(has('elasticache:DescribeReplicationGroups', '*')).toBe(true);
    expect(has('sts:AssumeRole', `arn:aws:iam::${ACCOUNT}:role/cache-access`)).toBe(true);
    expect(
      has(
        'secretsmanager:PutSecretValue',
        `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:drawbridge/elasticache/*`,
      ),
    ).toBe(true);
    expect(has('elasticache:ModifyUser', `arn:aws:elasticache:us-east-1:${ACCOUNT}:user:*`)).toBe(true);
  });
});

describe('assumed roles', () => {
  const roleArn = `arn:aws:iam::${ACCOUNT}:role/rds-prod`;
  const behindRole = databases('rds', 3).map((d) => ({
    ...d,
    spec: { ...d.spec, aws: { ...d.spec.aws!, assumeRoleArn: roleArn } },
  }));
  const direct = databases('redshift', 2);
  const matchers: AwsMatcher[] = [
    { types: ['rds'], regions: ['us-east-1'], tags: { '*': '*' }, assumeRoleArn: roleArn },
  ];

  it("puts a database's permissions on the role it is reached through; the own role only assumes it", () => {
    const own = requiredGrants(inputs({ databases: [...behindRole, ...direct], matchers }));
    expect(own.some((g) => g.actions.includes('rds-db:connect'))).toBe(false);
    expect(own.some((g) => g.actions.includes('rds:DescribeDBInstances'))).toBe(false);
    expect(own.some((g) => g.actions.includes('redshift:GetClusterCredentials'))).toBe(true);
    expect(own.some((g) => g.actions.includes('sts:AssumeRole') && g.resource === roleArn)).toBe(true);

    const theirs = requiredGrants(
      inputs({ databases: [...behindRole, ...direct], matchers, forRole: roleArn }),
    );
    expect(theirs.filter((g) => g.actions.includes('rds-db:connect'))).toHaveLength(3);
    expect(theirs.some((g) => g.actions.includes('rds:DescribeDBInstances'))).toBe(true);
    expect(
      theirs.some(
        (g) => g.actions.includes('redshift:GetClusterCredentials') || g.actions.includes('sts:AssumeRole'),
      ),
    ).toBe(false);
  });
});

describe("a Database's spec.aws names one resource", () => {
  // Region, identifiers and assumeRoleArn are spliced into the policy's ARNs: a tenant's `*` there
  // granted every database (or, as sts:AssumeRole on arn:aws:iam::*:role/*, every role) it matched.
  const spec = (aws: object) => ({
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'Database',
    metadata: { name: 'x', namespace: 'tenant' },
    spec: {
      protocol: 'postgres',
      uri: 'postgres://x.example:5432',
      auth: { type: 'rds-iam' },
      aws: { type: 'rds', region: 'us-east-1', ...aws },
    },
  });

  it.each([
    { region: '*' },
    { region: 'us-*' },
    { region: 'us-east-1:*' },
    { identifiers: { resourceId: '*' } },
    { identifiers: { resourceId: 'db-?' } },
    { identifiers: { resourceId: '${aws:username}' } },
    { identifiers: { workgroupArn: 'arn:aws:redshift-serverless:us-east-1:123456789012:workgroup/*' } },
    { assumeRoleArn: 'arn:*' },
    { assumeRoleArn: 'arn:aws:iam::*:role/*' },
    { assumeRoleArn: `arn:aws:iam::${ACCOUNT}:role/team-*` },
    { assumeRoleArn: `arn:aws:iam::${ACCOUNT}:user/admin` },
  ])('refuses %j', (aws) => {
    expect(Database.safeParse(spec(aws)).success).toBe(false);
  });

  it.each([
    { region: 'us-gov-west-1' },
    { region: 'ap-southeast-5', accountId: ACCOUNT },
    { identifiers: { resourceId: resourceId('db', 'x'), instance: 'orders' } },
    { identifiers: { workgroupArn: 'arn:aws:redshift-serverless:us-east-1:123456789012:workgroup/0f3c-11' } },
    { assumeRoleArn: `arn:aws-cn:iam::${ACCOUNT}:role/path/to/db+access@team=a,b.c` },
  ])('accepts %j', (aws) => {
    expect(Database.safeParse(spec(aws)).success).toBe(true);
  });
});
