// `drawbridge iam print --types rds,redshift [--config FILE]`: the IAM policy Drawbridge needs, as it
// would attach it (compacted, split into managed policies when it does not fit inline).
import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import type { Database } from '../../api/database.js';
import { AWS_TYPES, type AwsType } from '../../api/runtime.js';

function types(value: string): AwsType[] {
  const list = value
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  for (const t of list) {
    if (!(AWS_TYPES as readonly string[]).includes(t)) {
      throw new InvalidArgumentError(`unknown type "${t}": use ${AWS_TYPES.join(', ')}`);
    }
  }
  return list as AwsType[];
}

export function iamCommand(): Command {
  const iam = new Command('iam').description('IAM policies for AWS databases');
  iam
    .command('print')
    .description('print the IAM policy the controller and agents need')
    .option('--types <list>', `comma-separated: ${AWS_TYPES.join(',')}`, types, [] as AwsType[])
    .option('--config <file>', 'a YAML stream of Database documents to grant access to')
    .option('--account <id>', 'AWS account ID for resources that do not name one', '*')
    .option('--managed-users', 'include ElastiCache managed-user rotation (Secrets Manager)', false)
    .option('--user', 'size for an IAM user (2,048-character inline limit) instead of a role', false)
    .option('--role-arn <arn>', "the policy for this assumeRoleArn (default: Drawbridge's own role)")
    .option(
      '--agents',
      "the policy for the agents' role (Helm agents.aws.roleArn): connect-time calls only",
      false,
    )
    .action(
      async (opts: {
        types: AwsType[];
        config?: string;
        account: string;
        managedUsers: boolean;
        user: boolean;
        roleArn?: string;
        agents: boolean;
      }) => {
        const [{ IAM_LIMITS, planPolicy }, { requiredGrants }] = await Promise.all([
          import('../../aws/iam-policy.js'),
          import('../../aws/iam-statements.js'),
        ]);
        const databases = opts.config ? await loadDatabases(opts.config) : [];
        const grants = requiredGrants({
          databases,
          matchers: [],
          types: opts.types,
          defaultAccount: opts.account,
          managedUsers: opts.managedUsers,
          ...(opts.roleArn ? { forRole: opts.roleArn } : {}),
          agents: opts.agents,
        });
        const plan = planPolicy(grants, {
          inlineRoom: opts.user ? IAM_LIMITS.userInline : IAM_LIMITS.roleInline,
          managedSlots: IAM_LIMITS.managedPoliciesPerRole,
        });
        const out = plan.inline ? plan.inline : { managedPolicies: plan.managed };
        process.stdout.write(JSON.stringify(out, null, 2) + '\n');
      },
    );
  return iam;
}

async function loadDatabases(file: string): Promise<Database[]> {
  const { parseConfig } = await import('../../api/config.js');
  return parseConfig(await readFile(file, 'utf8'), file).databases;
}
