// What IAM permissions Drawbridge needs, derived from its Databases and discovery matchers: one grant
// per action × resource, before compaction (iam-policy.ts). A grant may carry a `wildcard` resource —
// the per-account/region form — when a matcher already enrols every database of that type there, so
// widening the resource grants nothing the configuration does not already ask for.
import type { AuthType, AwsType, Database } from '../api/database.js';
import { Identifier } from './clients.js';
import type { AwsMatcher } from '../api/controller-config.js';
import { accountOfArn, coversRegion, matchesAll } from './matchers.js';

export interface Grant {
  actions: string[];
  resource: string;
  /** Per-account/region resource that may replace `resource` when space runs out. */
  wildcard?: string;
}

export interface PolicyInputs {
  databases: Database[];
  matchers: AwsMatcher[];
  /** Types the target role needs even with no Database yet (`drawbridge iam print --types`). */
  types?: AwsType[];
  /** Account used where a Database or matcher does not name one (GetCallerIdentity). */
  defaultAccount: string;
  /** Manage ElastiCache users' passwords (elasticache-managed). */
  managedUsers?: boolean;
  /**
   * The role the policy is for: undefined for Drawbridge's own role, or one of the `assumeRoleArn`s.
   * Calls made through an assumed role need their permissions on that role; Drawbridge's own role
   * then only needs sts:AssumeRole on it.
   */
  forRole?: string;
  /**
   * The policy for the in-cluster agents' role (Helm agents.aws.roleArn) instead of the controller's:
   * only what agents call at connect time — connect grants, elasticache:DescribeUsers (the IAM user
   * check), the managed users' passwords (read only) and sts:AssumeRole for assumeRoleArn. No
   * discovery, no ModifyDB*, no ModifyUser, no writes to Secrets Manager.
   */
  agents?: boolean;
}

const DISCOVERY_ACTIONS: Record<AwsType, string[]> = {
  rds: ['rds:DescribeDBInstances', 'rds:ListTagsForResource', 'rds:ModifyDBInstance'],
  aurora: [
    'rds:DescribeDBClusters',
    'rds:DescribeDBInstances',
    'rds:ListTagsForResource',
    'rds:ModifyDBCluster',
  ],
  redshift: ['redshift:DescribeClusters'],
  'redshift-serverless': [
    'redshift-serverless:ListWorkgroups',
    'redshift-serverless:GetWorkgroup',
    'redshift-serverless:ListNamespaces',
    'redshift-serverless:ListTagsForResource',
  ],
  elasticache: [
    'elasticache:DescribeReplicationGroups',
    'elasticache:DescribeCacheClusters',
    'elasticache:ListTagsForResource',
    'elasticache:DescribeUsers',
  ],
  'elasticache-serverless': [
    'elasticache:DescribeServerlessCaches',
    'elasticache:ListTagsForResource',
    'elasticache:DescribeUsers',
  ],
};

const MANAGED_USER_ACTIONS = [
  'elasticache:ModifyUser',
  'elasticache:DescribeUsers',
  'elasticache:ListTagsForResource',
];
const SECRET_ACTIONS = [
  'secretsmanager:CreateSecret',
  'secretsmanager:DescribeSecret',
  'secretsmanager:GetSecretValue',
  'secretsmanager:PutSecretValue',
  'secretsmanager:TagResource',
];

/** Connect grants for one database, with their per-account/region wildcard form. */
function connectGrants(type: AwsType, r: string, a: string, ids: Record<string, string>): Grant[] {
  switch (type) {
    case 'rds':
    case 'aurora':
      return [
        {
          actions: ['rds-db:connect'],
          resource: `arn:aws:rds-db:${r}:${a}:dbuser:${ids[Identifier.resourceId] ?? '*'}/*`,
          wildcard: `arn:aws:rds-db:${r}:${a}:dbuser:*/*`,
        },
      ];
    case 'redshift': {
      const c = ids[Identifier.cluster] ?? '*';
      const w = (kind: string) => `arn:aws:redshift:${r}:${a}:${kind}:*/*`;
      return [
        {
          actions: ['redshift:GetClusterCredentials'],
          resource: `arn:aws:redshift:${r}:${a}:dbuser:${c}/*`,
          wildcard: w('dbuser'),
        },
        {
          actions: ['redshift:GetClusterCredentials', 'redshift:GetClusterCredentialsWithIAM'],
          resource: `arn:aws:redshift:${r}:${a}:dbname:${c}/*`,
          wildcard: w('dbname'),
        },
        {
          actions: ['redshift:GetClusterCredentials'],
          resource: `arn:aws:redshift:${r}:${a}:dbgroup:${c}/*`,
          wildcard: w('dbgroup'),
        },
      ];
    }
    case 'redshift-serverless':
      return [
        {
          actions: ['redshift-serverless:GetCredentials'],
          resource: ids.workgroupArn ?? `arn:aws:redshift-serverless:${r}:${a}:workgroup/*`,
          wildcard: `arn:aws:redshift-serverless:${r}:${a}:workgroup/*`,
        },
      ];
    case 'elasticache':
    case 'elasticache-serverless': {
      const kind = type === 'elasticache' ? 'replicationgroup' : 'serverlesscache';
      const name =
        ids[type === 'elasticache' ? Identifier.replicationGroup : Identifier.serverlessCache] ?? '*';
      return [
        {
          actions: ['elasticache:Connect'],
          resource: `arn:aws:elasticache:${r}:${a}:${kind}:${name}`,
          wildcard: `arn:aws:elasticache:${r}:${a}:${kind}:*`,
        },
        { actions: ['elasticache:Connect'], resource: `arn:aws:elasticache:${r}:${a}:user:*` },
      ];
    }
  }
}

/** Rotating managed ElastiCache users: ModifyUser plus their passwords in Secrets Manager. */
function managedUserGrants(region: string, account: string): Grant[] {
  return [
    { actions: MANAGED_USER_ACTIONS, resource: `arn:aws:elasticache:${region}:${account}:user:*` },
    {
      actions: SECRET_ACTIONS,
      resource: `arn:aws:secretsmanager:${region}:${account}:secret:drawbridge/elasticache/*`,
    },
  ];
}

/** What the agent of a database of `type` with `auth` calls in region `r`, account `a`. */
function agentConnectGrants(
  type: AwsType,
  auth: AuthType | undefined,
  r: string,
  a: string,
  ids: Record<string, string>,
): Grant[] {
  if (auth === 'elasticache-managed') {
    return [
      {
        actions: ['secretsmanager:GetSecretValue'],
        resource: `arn:aws:secretsmanager:${r}:${a}:secret:drawbridge/elasticache/*`,
      },
    ];
  }
  const grants = connectGrants(type, r, a, ids).map(({ actions, resource }) => ({ actions, resource }));
  if (type.startsWith('elasticache')) {
    grants.push({ actions: ['elasticache:DescribeUsers'], resource: `arn:aws:elasticache:${r}:${a}:user:*` });
  }
  return grants;
}

/** The agents' role: connect-time calls only (see PolicyInputs.agents). */
function agentGrants(inputs: PolicyInputs): Grant[] {
  const grants: Grant[] = [];
  for (const type of inputs.types ?? []) {
    grants.push(...agentConnectGrants(type, undefined, '*', '*', {}));
    if (inputs.managedUsers && type.startsWith('elasticache')) {
      grants.push(...agentConnectGrants(type, 'elasticache-managed', '*', '*', {}));
    }
  }
  for (const db of inputs.databases) {
    const aws = db.spec.aws;
    if (!aws) continue;
    if (aws.assumeRoleArn) {
      // The calls then run as that role: its policy is the --role-arn one.
      grants.push({ actions: ['sts:AssumeRole'], resource: aws.assumeRoleArn });
      continue;
    }
    const account = aws.accountId ?? inputs.defaultAccount;
    grants.push(
      ...agentConnectGrants(aws.type, db.spec.auth.type, aws.region, account, aws.identifiers ?? {}),
    );
  }
  return grants;
}

/** Every grant the configuration needs on `inputs.forRole`, unordered and uncompacted. */
export function requiredGrants(inputs: PolicyInputs): Grant[] {
  if (inputs.agents) return agentGrants(inputs);
  const grants: Grant[] = [];
  const own = inputs.forRole === undefined;
  // Whose permissions a call made as `roleArn` (undefined: Drawbridge's own identity) needs.
  const mine = (roleArn: string | undefined) => roleArn === inputs.forRole;
  const assume = (roleArn: string | undefined) => {
    if (own && roleArn) grants.push({ actions: ['sts:AssumeRole'], resource: roleArn });
  };

  const types = new Set<AwsType>(inputs.types ?? []);
  for (const m of inputs.matchers) {
    assume(m.assumeRoleArn);
    if (mine(m.assumeRoleArn)) for (const t of m.types) types.add(t);
  }
  for (const type of types) grants.push({ actions: DISCOVERY_ACTIONS[type], resource: '*' });
  if (own) {
    for (const type of inputs.types ?? []) {
      grants.push(
        ...connectGrants(type, '*', '*', {}).map(({ actions, resource }) => ({ actions, resource })),
      );
      if (inputs.managedUsers && type.startsWith('elasticache')) grants.push(...managedUserGrants('*', '*'));
    }
  }

  for (const db of inputs.databases) {
    const aws = db.spec.aws;
    if (!aws) continue;
    assume(aws.assumeRoleArn);
    if (!mine(aws.assumeRoleArn)) continue;
    const account = aws.accountId ?? accountOfArn(aws.assumeRoleArn) ?? inputs.defaultAccount;
    const widen = inputs.matchers.some(
      (m) =>
        mine(m.assumeRoleArn) &&
        matchesAll(m) &&
        coversRegion(m, aws.type, aws.region) &&
        (accountOfArn(m.assumeRoleArn) ?? inputs.defaultAccount) === account,
    );
    for (const g of connectGrants(aws.type, aws.region, account, aws.identifiers ?? {})) {
      grants.push(widen ? g : { actions: g.actions, resource: g.resource });
    }
    if (
      db.spec.auth.type === 'elasticache-managed' ||
      (inputs.managedUsers && aws.type.startsWith('elasticache'))
    ) {
      grants.push(...managedUserGrants(aws.region, account));
    }
    // Agents check the IAM user before they connect: a role shared with them needs it too.
    if (db.spec.auth.type === 'elasticache-iam') {
      grants.push({
        actions: ['elasticache:DescribeUsers'],
        resource: `arn:aws:elasticache:${aws.region}:${account}:user:*`,
      });
    }
  }
  return grants;
}
