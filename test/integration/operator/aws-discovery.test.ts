/**
 * AWS discovery in the controller, end to end: the real API server (test/k8s), the AWS emulator
 * (moto + test/aws extension), and `drawbridge controller --config` as a separate process running as
 * an IRSA role. RDS, Aurora, ElastiCache and Redshift resources created through the AWS API become
 * Database objects; AWS changes follow; the controller's own role gets the IAM policy; failures land
 * as Events on the controller's Pod and as CredentialsReady on the Databases they affect.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  AddTagsToResourceCommand,
  CreateReplicationGroupCommand,
  CreateUserCommand,
  DeleteReplicationGroupCommand,
  ElastiCacheClient,
} from '@aws-sdk/client-elasticache';
import { GetRolePolicyCommand, IAMClient, UpdateAssumeRolePolicyCommand } from '@aws-sdk/client-iam';
import {
  AddTagsToResourceCommand as AddRdsTags,
  CreateDBInstanceCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_ACCOUNT, type Moto, startMoto } from '../../aws/moto.js';
import {
  createAuroraCluster,
  createRedshiftCluster,
  createRole,
  harness,
  trustPolicy,
} from '../aws/fixture.js';
import {
  CONTROLLER_NS,
  type ControllerProcess,
  type OperatorEnv,
  eventually,
  logOf,
  startOperatorEnv,
} from './fixture.js';

const NS = 'aws-dbs';
/** A tenant's namespace: its Databases are its own to write. */
const TENANT = 'tenant-b';
const POD = 'drawbridge-controller-0';
const ARN = (role: string) => `arn:aws:iam::${TEST_ACCOUNT}:role/${role}`;
const CONTROLLER_ROLE = 'drawbridge-controller';
const n = (name: string, type: string) => `${name}-${type}-us-east-1-${TEST_ACCOUNT}`;
const prod = [{ Key: 'env', Value: 'prod' }];

let moto: Moto;
let env: OperatorEnv;
let controller: ControllerProcess;
let startArgs: { args: string[]; env: Record<string, string> };

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
}
interface Db {
  metadata: {
    name: string;
    labels?: Record<string, string>;
    managedFields?: { manager: string; operation: string }[];
  };
  spec: { uri: string; auth: { type: string }; tls?: object; aws?: { assumeRoleArn?: string } };
  status?: { conditions?: Condition[] };
}

const aws = () => harness(moto);
const ROOT = `arn:aws:iam::${TEST_ACCOUNT}:root`;

async function databases(): Promise<Map<string, Db>> {
  const out = await env.plane.kubectl(['get', 'databases', '-n', NS, '-o', 'json', '--show-managed-fields']);
  return new Map((JSON.parse(out) as { items: Db[] }).items.map((d) => [d.metadata.name, d]));
}

async function podEvents(): Promise<{ reason: string; message: string; type: string }[]> {
  const out = await env.plane.kubectl([
    'get',
    'events',
    '-n',
    CONTROLLER_NS,
    '--field-selector',
    `involvedObject.kind=Pod,involvedObject.name=${POD}`,
    '-o',
    'json',
  ]);
  return (JSON.parse(out) as { items: { reason: string; message: string; type: string }[] }).items;
}

async function seedAws(): Promise<void> {
  const rds = new RDSClient(aws());
  const instance = (id: string, extra: object = {}) =>
    rds.send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: id,
        Engine: 'postgres',
        DBInstanceClass: 'db.t3.micro',
        Tags: prod,
        ...extra,
      }),
    );
  await instance('orders');
  await instance('billing', { EnableIAMDatabaseAuthentication: true });
  await createAuroraCluster(rds, 'fleet', { tags: prod, members: ['fleet-1', 'fleet-2'] });
  const ec = new ElastiCacheClient(aws());
  await ec.send(
    new CreateReplicationGroupCommand({
      ReplicationGroupId: 'sessions',
      ReplicationGroupDescription: 'cluster mode off',
      Engine: 'redis',
      EngineVersion: '7.1',
      ReplicasPerNodeGroup: 1,
      TransitEncryptionEnabled: true,
      Tags: prod,
    }),
  );
  const user = await ec.send(
    new CreateUserCommand({
      UserId: 'app-user',
      UserName: 'app-user',
      Engine: 'redis',
      AccessString: 'on ~* +@all',
      Passwords: ['initial-password-0123456789'],
    }),
  );
  await ec.send(
    new AddTagsToResourceCommand({
      ResourceName: user.ARN,
      Tags: [{ Key: 'drawbridge.dev/managed', Value: 'true' }],
    }),
  );
  await createRedshiftCluster(aws(), 'warehouse', prod);
  await createRole(moto, CONTROLLER_ROLE, '*');
  await createRole(moto, 'discovery-ro', ROOT, 'ext-1');
  await createRole(moto, 'discovery-locked', ROOT, 'expected-id');
}

const CONFIG = `aws:
  namespace: ${NS}
  discoveryInterval: 1s
  iamBootstrap: attach
  managedUsers: { rotationInterval: 1h }
  rdsCaSecretRef: { name: rds-ca-bundle }
  matchers:
    - types: [rds, aurora, elasticache]
      regions: [us-east-1]
      tags: { env: prod }
    - types: [redshift]
      regions: [us-east-1]
      tags: { env: prod }
      assumeRoleArn: ${ARN('discovery-ro')}
      externalId: ext-1
    - types: [redshift-serverless]
      regions: [us-east-1]
      assumeRoleArn: ${ARN('discovery-locked')}
      externalId: wrong-id
`;

/** What the chart gives the controller's pod: IRSA, and the downward API's name and UID. */
async function controllerPod(): Promise<Record<string, string>> {
  await env.apply([
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'default', namespace: CONTROLLER_NS } },
    {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: POD, namespace: CONTROLLER_NS },
      spec: {
        automountServiceAccountToken: false,
        containers: [{ name: 'controller', image: 'drawbridge:test' }],
      },
    },
  ]);
  const pod = await env.get<{ metadata: { uid: string } }>('pod', POD, CONTROLLER_NS);
  return { POD_NAME: POD, POD_NAMESPACE: CONTROLLER_NS, POD_UID: pod!.metadata.uid };
}

beforeAll(async () => {
  [moto, env] = await Promise.all([
    startMoto(),
    startOperatorEnv({ controllers: 0, namespaces: [NS, TENANT], nodeAgent: false }),
  ]);
  await seedAws();
  await env.apply([
    // A hand-made Database whose name discovery would also pick for RDS "orders": never touched.
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: n('orders', 'rds'), namespace: NS, labels: { team: 'mine' } },
      spec: { protocol: 'postgres', uri: 'postgres://mine.internal:5432', auth: { type: 'passthrough' } },
    },
    // A hand-made ElastiCache (engine 6) Database with managed users. (The emulator reports no engine
    // version for replication groups, so discovery takes them all for engine 7 with IAM auth.)
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'legacy-cache', namespace: NS },
      spec: {
        protocol: 'redis',
        uri: 'rediss://master.legacy.abc123.use1.cache.amazonaws.com:6379',
        auth: { type: 'elasticache-managed' },
        aws: { type: 'elasticache', region: 'us-east-1', identifiers: { replicationGroup: 'legacy' } },
      },
    },
  ]);
  const configPath = path.join(env.plane.dir, 'controller.yaml');
  await writeFile(configPath, CONFIG);
  startArgs = {
    args: [`--config=${configPath}`],
    env: { ...moto.irsaEnv(ARN(CONTROLLER_ROLE)), ...(await controllerPod()) },
  };
  controller = env.startController('aws-0', startArgs);
}, 90_000);

afterAll(async () => {
  await env?.stop();
  await moto?.stop();
});

describe('drawbridge controller --config (AWS)', () => {
  it('creates a Database per AWS database and endpoint, named and labelled, applied by drawbridge', async () => {
    const want = [
      n('billing', 'rds'),
      n('fleet', 'aurora'),
      n('fleet-reader', 'aurora'),
      n('sessions', 'elasticache'),
      n('sessions-reader', 'elasticache'),
      n('warehouse', 'redshift'),
    ];
    const dbs = await eventually(
      'discovered Databases',
      async () => {
        const all = await databases();
        const missing = want.filter((w) => !all.has(w));
        if (missing.length)
          throw new Error(`missing ${missing.join(', ')}; have ${[...all.keys()].join(', ')}`);
        return all;
      },
      30_000,
    );
    const billing = dbs.get(n('billing', 'rds'))!;
    expect(billing.metadata.labels).toMatchObject({
      'drawbridge.dev/origin': 'aws',
      region: 'us-east-1',
      'account-id': TEST_ACCOUNT,
      engine: 'postgres',
      'endpoint-type': 'instance',
      env: 'prod',
    });
    expect(billing.spec.auth.type).toBe('rds-iam');
    // RDS/Aurora verify against the Amazon RDS CA bundle; ElastiCache and Redshift use public roots.
    const rdsCa = { name: 'rds-ca-bundle', key: 'ca.crt' };
    expect(billing.spec.tls).toEqual({ mode: 'verify-full', caSecretRef: rdsCa });
    expect(dbs.get(n('fleet', 'aurora'))!.spec.tls).toEqual({ mode: 'verify-full', caSecretRef: rdsCa });
    expect(dbs.get(n('sessions', 'elasticache'))!.spec.tls).toEqual({ mode: 'verify-full' });
    expect(dbs.get(n('warehouse', 'redshift'))!.spec.tls).toEqual({ mode: 'verify-full' });
    expect(billing.metadata.managedFields).toContainEqual(
      expect.objectContaining({ manager: 'drawbridge', operation: 'Apply' }),
    );
    expect(dbs.get(n('sessions', 'elasticache'))!.spec.auth.type).toBe('elasticache-iam');
    expect(dbs.get('legacy-cache')!.metadata.labels).toBeUndefined();
    expect(dbs.get(n('warehouse', 'redshift'))!.spec.aws!.assumeRoleArn).toBe(ARN('discovery-ro'));

    const mine = dbs.get(n('orders', 'rds'))!;
    expect(mine.spec.uri).toBe('postgres://mine.internal:5432');
    expect(mine.metadata.labels).toEqual({ team: 'mine' });
    expect(mine.metadata.managedFields!.some((f) => f.operation === 'Apply')).toBe(false);
  });

  it("attaches the IAM policy the Databases need to the controller's own role", async () => {
    const iam = new IAMClient(aws());
    const want = [
      `sts:AssumeRole ${ARN('discovery-ro')}`,
      `sts:AssumeRole ${ARN('discovery-locked')}`,
      'rds:DescribeDBInstances *',
      `elasticache:Connect arn:aws:elasticache:us-east-1:${TEST_ACCOUNT}:replicationgroup:sessions`,
      `elasticache:ModifyUser arn:aws:elasticache:us-east-1:${TEST_ACCOUNT}:user:*`,
      /^rds-db:connect arn:aws:rds-db:us-east-1:123456789012:dbuser:db-\w+\/\*$/,
      /^rds-db:connect arn:aws:rds-db:us-east-1:123456789012:dbuser:cluster-\w+\/\*$/,
    ];
    const grants = await eventually('the policy on the controller role', async () => {
      const out = await iam.send(
        new GetRolePolicyCommand({ RoleName: CONTROLLER_ROLE, PolicyName: 'drawbridge' }),
      );
      const doc = JSON.parse(decodeURIComponent(out.PolicyDocument!)) as {
        Statement: { Action: string | string[]; Resource: string | string[] }[];
      };
      const all = doc.Statement.flatMap((s) =>
        [s.Action].flat().flatMap((a) => [s.Resource].flat().map((r) => `${a} ${r}`)),
      );
      const missing = want.filter((w) => !all.some((g) => (typeof w === 'string' ? g === w : w.test(g))));
      if (missing.length) throw new Error(`missing ${missing.join(', ')} in ${all.join('; ')}`);
      return all;
    });
    // The Redshift cluster is reached through discovery-ro: its permissions belong on that role.
    expect(grants.some((g) => g.startsWith('redshift:GetClusterCredentials'))).toBe(false);
  });

  it('rotates the managed users for the elasticache-managed Database into Secrets Manager', async () => {
    const sm = new SecretsManagerClient(aws());
    const secret = await eventually('rotated secret', () =>
      sm
        .send(
          new GetSecretValueCommand({
            SecretId: `drawbridge/elasticache/us-east-1/${TEST_ACCOUNT}/user/app-user`,
          }),
        )
        .then((s) => s.SecretString),
    );
    expect(secret).toMatch(/^[0-9a-f]{128}$/);
  });

  it('follows a tag change in AWS with a label change', async () => {
    await new RDSClient(aws()).send(
      new AddRdsTags({
        ResourceName: `arn:aws:rds:us-east-1:${TEST_ACCOUNT}:db:billing`,
        Tags: [{ Key: 'team', Value: 'payments' }],
      }),
    );
    await eventually('label team=payments', async () => {
      const db = (await databases()).get(n('billing', 'rds'));
      return db?.metadata.labels?.team === 'payments';
    });
  });

  it("never lets a drawbridge.dev/name tag take over another database's Database; says so on the Pod", async () => {
    const billing = n('billing', 'rds');
    const uri = (await databases()).get(billing)!.spec.uri;
    await new RDSClient(aws()).send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: 'sandbox',
        Engine: 'postgres',
        DBInstanceClass: 'db.t3.micro',
        Tags: [...prod, { Key: 'drawbridge.dev/name', Value: billing }],
      }),
    );
    const dbs = await eventually('sandbox under its own name', async () => {
      const all = await databases();
      return all.has(n('sandbox', 'rds')) && all;
    });
    expect(dbs.get(billing)!.spec.uri).toBe(uri);
    const conflict = await eventually('DiscoveryNameConflict event', async () =>
      (await podEvents()).find((e) => e.reason === 'DiscoveryNameConflict'),
    );
    expect(conflict.message).toContain(`Database name ${billing}`);
  });

  it('deletes the Databases of what AWS no longer has, and never a hand-made one', async () => {
    await new ElastiCacheClient(aws()).send(
      new DeleteReplicationGroupCommand({ ReplicationGroupId: 'sessions' }),
    );
    const dbs = await eventually('sessions Databases gone', async () => {
      const all = await databases();
      return !all.has(n('sessions', 'elasticache')) && !all.has(n('sessions-reader', 'elasticache')) && all;
    });
    expect(dbs.has(n('orders', 'rds'))).toBe(true);
    expect(dbs.has(n('billing', 'rds'))).toBe(true);
  });

  it('puts an Event naming AssumeRoleDenied and the fix on the controller Pod', async () => {
    const events = await eventually('AssumeRoleDenied event', async () => {
      const all = await podEvents();
      return all.some((e) => e.reason === 'AssumeRoleDenied') && all;
    });
    const denied = events.find((e) => e.reason === 'AssumeRoleDenied')!;
    expect(denied.type).toBe('Warning');
    expect(denied.message).toContain(ARN('discovery-locked'));
    expect(denied.message).toMatch(/Fix: .*trust policy.*sts:ExternalId/);
    expect(events.map((e) => e.reason)).toContain('IAMPolicyAttached');
  });

  it('keeps the Databases of a role that stops trusting the controller, with CredentialsReady=False AssumeRoleDenied', async () => {
    await new IAMClient(aws()).send(
      new UpdateAssumeRolePolicyCommand({
        RoleName: 'discovery-ro',
        PolicyDocument: trustPolicy(ROOT, 'ext-2'),
      }),
    );
    // A fresh process: the old one still holds assumed-role credentials (valid for an hour).
    const exited = new Promise((r) => controller.child.once('exit', r));
    controller.child.kill('SIGTERM');
    await exited;
    controller = env.startController('aws-1', startArgs);

    const warehouse = n('warehouse', 'redshift');
    const db = await eventually(
      `CredentialsReady=False on ${warehouse}\n${logOf(controller)}`,
      async () => {
        const d = (await databases()).get(warehouse);
        const c = d?.status?.conditions?.find((x) => x.type === 'CredentialsReady');
        return c?.reason === 'AssumeRoleDenied' && d;
      },
      30_000,
    );
    const conditions = db.status!.conditions!;
    expect(conditions.find((c) => c.type === 'CredentialsReady')).toMatchObject({
      status: 'False',
      message: expect.stringMatching(new RegExp(`${ARN('discovery-ro')}.*Fix: .*trust policy`)),
    });
    expect(conditions.find((c) => c.type === 'Ready')!.status).toBe('False');
    // The others are unaffected.
    const billing = (await databases()).get(n('billing', 'rds'))!;
    expect(billing.status?.conditions?.find((c) => c.type === 'CredentialsReady')?.reason).not.toBe(
      'AssumeRoleDenied',
    );
  });
  it("a tenant's Databases that do not fit the role's policy are told so; every other namespace's stay covered", async () => {
    // 30 RDS Databases with 3,000-character resource IDs: ~90,000 characters, past any role's room.
    await env.apply(
      Array.from({ length: 30 }, (_, i) => ({
        apiVersion: 'drawbridge.dev/v1alpha1',
        kind: 'Database',
        metadata: { name: `bloat-${i}`, namespace: TENANT },
        spec: {
          protocol: 'postgres',
          uri: 'postgres://bloat.rds.amazonaws.com:5432',
          auth: { type: 'rds-iam' },
          aws: {
            type: 'rds',
            region: 'us-east-1',
            identifiers: { resourceId: `db-${'X'.repeat(3000)}${i}` },
          },
        },
      })),
    );
    const credentials = async (namespace: string, name: string) => {
      const d = await env.get<Db>('database', name, namespace);
      return d?.status?.conditions?.find((c) => c.type === 'CredentialsReady');
    };
    const told = await eventually(
      `PolicySizeExceeded on ${TENANT}/bloat-0\n${logOf(controller)}`,
      async () => {
        const c = await credentials(TENANT, 'bloat-0');
        return c?.reason === 'PolicySizeExceeded' && c;
      },
    );
    expect(told.message).toMatch(/of namespace tenant-b .*does not fit beside the other namespaces'/);
    // A later IAM sync: the other namespace's Databases are still covered, and told nothing.
    const policy = async () => {
      const out = await new IAMClient(aws()).send(
        new GetRolePolicyCommand({ RoleName: CONTROLLER_ROLE, PolicyName: 'drawbridge' }),
      );
      return decodeURIComponent(out.PolicyDocument!);
    };
    const billing = await env.get<{ spec: { aws: { identifiers: { resourceId: string } } } }>(
      'database',
      n('billing', 'rds'),
      NS,
    );
    expect(await policy()).toContain(`dbuser:${billing!.spec.aws.identifiers.resourceId}/*`);
    expect(await policy()).not.toContain('XXXXXXXX');
    expect((await credentials(NS, 'legacy-cache'))?.reason).not.toBe('PolicySizeExceeded');
    expect((await credentials(NS, n('billing', 'rds')))?.reason).not.toBe('PolicySizeExceeded');
  });
});
