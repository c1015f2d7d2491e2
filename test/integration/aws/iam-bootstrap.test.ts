// IAM bootstrap against the emulator's IAM: the controller puts the policy its Databases need on its
// own IRSA role. The emulator does not enforce IAM's size limits; our code does, and these tests read
// back what was written and check it against those limits.
import {
  DeleteRolePolicyCommand,
  GetPolicyCommand,
  GetPolicyVersionCommand,
  GetRolePolicyCommand,
  IAMClient,
  ListAttachedRolePoliciesCommand,
  ListRolePoliciesCommand,
  PutRolePolicyCommand,
} from '@aws-sdk/client-iam';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../../src/api/database.js';
import { AwsClients } from '../../../src/aws/clients.js';
import { AwsReason, isAwsError } from '../../../src/aws/errors.js';
import {
  INLINE_POLICY_NAME,
  bootstrapIam,
  bootstrapRolePolicy,
  ownRole,
  type RoleRef,
} from '../../../src/aws/iam-bootstrap.js';
import { IAM_LIMITS, type PolicyDocument, policySize } from '../../../src/aws/iam-policy.js';
import { requiredGrants } from '../../../src/aws/iam-statements.js';
import type { AwsMatcher } from '../../../src/api/controller-config.js';
import { TEST_ACCOUNT } from '../../aws/moto.js';
import { databases } from '../../unit/aws/fixtures.js';
import { harness, startAwsWorld } from './fixture.js';

let world: Awaited<ReturnType<typeof startAwsWorld>>;
let clients: AwsClients;
let iam: IAMClient;
let role: RoleRef;
const ID = { region: 'us-east-1' };
const matcher: AwsMatcher = { types: ['rds', 'redshift'], regions: ['us-east-1'], tags: { env: 'prod' } };

beforeAll(async () => {
  world = await startAwsWorld();
  clients = new AwsClients();
  iam = new IAMClient(harness(world.moto));
});
afterAll(async () => {
  await world?.stop();
});

const grantsFor = (dbs: Database[]) =>
  requiredGrants({ databases: dbs, matchers: [matcher], defaultAccount: TEST_ACCOUNT });
const bootstrap = (dbs: Database[]) => bootstrapRolePolicy(clients.iam(ID), role, grantsFor(dbs));

async function written() {
  const names = (await iam.send(new ListRolePoliciesCommand({ RoleName: role.name }))).PolicyNames ?? [];
  const inline = names.includes(INLINE_POLICY_NAME)
    ? (JSON.parse(
        decodeURIComponent(
          (await iam.send(new GetRolePolicyCommand({ RoleName: role.name, PolicyName: INLINE_POLICY_NAME })))
            .PolicyDocument!,
        ),
      ) as PolicyDocument)
    : undefined;
  const attached =
    (await iam.send(new ListAttachedRolePoliciesCommand({ RoleName: role.name }))).AttachedPolicies ?? [];
  const managed: PolicyDocument[] = [];
  for (const p of attached) {
    const policy = await iam.send(new GetPolicyCommand({ PolicyArn: p.PolicyArn }));
    const version = await iam.send(
      new GetPolicyVersionCommand({ PolicyArn: p.PolicyArn, VersionId: policy.Policy!.DefaultVersionId }),
    );
    managed.push(JSON.parse(decodeURIComponent(version.PolicyVersion!.Document!)) as PolicyDocument);
  }
  return { inline, managed, arns: attached.map((p) => p.PolicyArn!) };
}

describe('own role', () => {
  it('comes from IRSA (AWS_ROLE_ARN), or from GetCallerIdentity when that is not set', async () => {
    role = await ownRole(clients.sts(ID));
    expect(role).toEqual({ account: TEST_ACCOUNT, name: 'drawbridge-agent' });
    expect(await ownRole(clients.sts(ID), {})).toEqual(role);
  });
});

describe('bootstrap', () => {
  const rds = databases('rds', 300);

  it('writes an inline policy for a few databases; a re-run changes nothing', async () => {
    const first = await bootstrapIam(clients, 'us-east-1', {
      databases: rds.slice(0, 10),
      matchers: [matcher],
    });
    expect(first.changed).toBe(true);
    expect(first.role).toEqual(role);
    const { inline, managed } = await written();
    expect(managed).toEqual([]);
    expect(JSON.stringify(inline)).toContain(rds[9]!.spec.aws!.identifiers!.resourceId);
    expect((await bootstrap(rds.slice(0, 10))).changed).toBe(false);
  });

  it('moves to customer-managed policies within their limits when inline is too small', async () => {
    const result = await bootstrap(rds);
    expect(result.changed).toBe(true);
    const { inline, managed, arns } = await written();
    expect(inline).toBeUndefined();
    expect(managed.length).toBeGreaterThan(1);
    expect(managed.length).toBeLessThanOrEqual(IAM_LIMITS.managedPoliciesPerRole);
    for (const doc of managed) expect(policySize(doc)).toBeLessThanOrEqual(IAM_LIMITS.managedPolicy);
    expect(
      arns.every((a) => a.startsWith(`arn:aws:iam::${TEST_ACCOUNT}:policy/drawbridge/drawbridge-agent-`)),
    ).toBe(true);
    const text = JSON.stringify(managed);
    for (const db of rds) expect(text).toContain(db.spec.aws!.identifiers!.resourceId!);
    expect((await bootstrap(rds)).changed).toBe(false);
  });

  it('shrinks back when Databases are removed: surplus managed policies detached and deleted', async () => {
    const before = (await written()).arns;
    await bootstrap(rds.slice(0, 5));
    const { inline, managed } = await written();
    expect(managed).toEqual([]);
    expect(
      inline!.Statement.flatMap((s) => s.Resource).filter((r) => String(r).includes('rds-db:')),
    ).toHaveLength(5);
    for (const arn of before) {
      await expect(iam.send(new GetPolicyCommand({ PolicyArn: arn }))).rejects.toThrow(
        /not found|NoSuchEntity/i,
      );
    }
  });

  it('counts the room other inline policies of the role already use', async () => {
    const filler = {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Action: 's3:GetObject',
          Resource: Array.from({ length: 320 }, (_, i) => `arn:aws:s3:::bucket-${i}/*`),
        },
      ],
    };
    await iam.send(
      new PutRolePolicyCommand({
        RoleName: role.name,
        PolicyName: 'someone-else',
        PolicyDocument: JSON.stringify(filler),
      }),
    );
    const filled = await bootstrap(rds.slice(0, 40));
    expect(filled.plan.inline).toBeUndefined();
    expect(filled.plan.managed.length).toBeGreaterThan(0);
    await iam.send(new DeleteRolePolicyCommand({ RoleName: role.name, PolicyName: 'someone-else' }));
    const result = await bootstrap(rds.slice(0, 40));
    expect(result.plan.inline).toBeDefined();
    expect((await written()).managed).toEqual([]);
  });

  it('reports PolicySizeExceeded and writes nothing when even managed policies cannot hold it', async () => {
    const before = await written();
    let caught: unknown;
    await bootstrap(databases('redshift', 1000)).catch((err: unknown) => (caught = err));
    expect(isAwsError(caught, AwsReason.PolicySizeExceeded)).toBe(true);
    expect((caught as Error).message).toMatch(/more needed/);
    expect(await written()).toEqual(before);
  });
});
