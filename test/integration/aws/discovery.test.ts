// Discovery against the AWS emulator: resources of every supported kind created through the AWS API,
// turned into Database objects, then changed in AWS and re-planned (create / update / delete).
// The controller applies these plans to the real API server (the operator's integration suite).
import {
  AddTagsToResourceCommand,
  CreateReplicationGroupCommand,
  CreateServerlessCacheCommand,
  DeleteReplicationGroupCommand,
  ElastiCacheClient,
} from '@aws-sdk/client-elasticache';
import {
  CreateDBClusterEndpointCommand,
  CreateDBInstanceCommand,
  DescribeDBInstancesCommand,
  RDSClient,
} from '@aws-sdk/client-rds';
import { CreateTagsCommand, RedshiftClient } from '@aws-sdk/client-redshift';
import {
  CreateNamespaceCommand,
  CreateWorkgroupCommand,
  RedshiftServerlessClient,
} from '@aws-sdk/client-redshift-serverless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../../src/api/database.js';
import { AwsClients } from '../../../src/aws/clients.js';
import { discoverAndPlan, runDiscovery } from '../../../src/aws/discovery/index.js';
import { AwsReason } from '../../../src/aws/errors.js';
import type { AwsMatcher } from '../../../src/api/controller-config.js';
import { TEST_ACCOUNT } from '../../aws/moto.js';
import { createAuroraCluster, createRedshiftCluster, createRole, harness, startAwsWorld } from './fixture.js';

let world: Awaited<ReturnType<typeof startAwsWorld>>;
const prod = [{ Key: 'env', Value: 'prod' }];
const ALL: AwsMatcher = {
  types: ['rds', 'aurora', 'redshift', 'redshift-serverless', 'elasticache', 'elasticache-serverless'],
  regions: ['us-east-1'],
  tags: { env: 'prod' },
};
const n = (name: string, type: string) => `${name}-${type}-us-east-1-${TEST_ACCOUNT}`;

beforeAll(async () => {
  world = await startAwsWorld();
  const aws = harness(world.moto);
  const rds = new RDSClient(aws);
  const instance = (id: string, tags: { Key: string; Value: string }[], extra: object = {}) =>
    rds.send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: id,
        Engine: 'postgres',
        DBInstanceClass: 'db.t3.micro',
        Tags: tags,
        ...extra,
      }),
    );
  await instance(
    'orders',
    [
      ...prod,
      {
        Key: 'aws:cloudformation:stack-id',
        Value: 'arn:aws:cloudformation:us-east-1:123456789012:stack/orders/abc',
      },
    ],
    {
      EnableIAMDatabaseAuthentication: true,
    },
  );
  await instance('legacy', prod, { EnableIAMDatabaseAuthentication: false });
  await instance('scratch', [{ Key: 'env', Value: 'dev' }]);
  await instance('mysql-one', prod, { Engine: 'mysql' });
  await createAuroraCluster(rds, 'fleet', {
    tags: [...prod, { Key: 'drawbridge.dev/name', Value: 'fleet-db' }],
    members: ['fleet-1', 'fleet-2'],
  });
  await rds.send(
    new CreateDBClusterEndpointCommand({
      DBClusterIdentifier: 'fleet',
      DBClusterEndpointIdentifier: 'analytics',
      EndpointType: 'READER',
    }),
  );
  await createRedshiftCluster(aws, 'warehouse', prod);
  const rss = new RedshiftServerlessClient(aws);
  await rss.send(new CreateNamespaceCommand({ namespaceName: 'adhoc' }));
  await rss.send(
    new CreateWorkgroupCommand({
      workgroupName: 'adhoc',
      namespaceName: 'adhoc',
      tags: [{ key: 'env', value: 'prod' }],
    }),
  );
  const ec = new ElastiCacheClient(aws);
  await ec.send(
    new CreateReplicationGroupCommand({
      ReplicationGroupId: 'sessions',
      ReplicationGroupDescription: 'cluster mode off',
      Engine: 'redis',
      ReplicasPerNodeGroup: 1,
      TransitEncryptionEnabled: true,
      Tags: prod,
    }),
  );
  await ec.send(
    new CreateReplicationGroupCommand({
      ReplicationGroupId: 'carts',
      ReplicationGroupDescription: 'cluster mode on',
      Engine: 'redis',
      ClusterMode: 'enabled',
      NumNodeGroups: 2,
      TransitEncryptionEnabled: true,
      Tags: prod,
    }),
  );
  await ec.send(
    new CreateServerlessCacheCommand({ ServerlessCacheName: 'tokens', Engine: 'valkey', Tags: prod }),
  );
});

afterAll(async () => {
  await world?.stop();
});

describe('discovery', () => {
  let first: Database[];

  it('finds every kind, by tag, with the endpoints each kind has', async () => {
    const result = await runDiscovery([ALL], new AwsClients(), { enableIamAuth: true });
    expect(result.errors).toEqual([]);
    first = result.databases;
    expect(first.map((d) => d.metadata.name).sort()).toEqual(
      [
        'fleet-db',
        'fleet-db-analytics',
        'fleet-db-reader',
        n('orders', 'rds'),
        n('legacy', 'rds'),
        n('warehouse', 'redshift'),
        n('adhoc', 'redshift-serverless'),
        n('sessions', 'elasticache'),
        n('sessions-reader', 'elasticache'),
        n('carts', 'elasticache'),
        n('tokens', 'elasticache-serverless'),
      ].sort(),
    );
    const byName = new Map(first.map((d) => [d.metadata.name, d]));
    const orders = byName.get(n('orders', 'rds'))!;
    expect(orders.metadata.labels).toMatchObject({
      region: 'us-east-1',
      'account-id': TEST_ACCOUNT,
      engine: 'postgres',
      'endpoint-type': 'instance',
      env: 'prod',
      'drawbridge.dev/origin': 'aws',
      'aws_cloudformation_stack-id': expect.stringMatching(/^arn_aws_cloudformation/),
    });
    expect(orders.spec).toMatchObject({
      protocol: 'postgres',
      auth: { type: 'rds-iam' },
      aws: { type: 'rds', identifiers: { instance: 'orders' } },
    });
    expect(orders.spec.aws!.identifiers!.resourceId).toMatch(/^db-/);
    expect(byName.get('fleet-db-reader')!.spec.uri).toContain('.cluster-ro-');
    expect(byName.get('fleet-db-analytics')!.spec.uri).toContain('analytics.cluster-custom-');
    expect(byName.get(n('carts', 'elasticache'))!.spec.uri).toMatch(
      /^rediss:\/\/clustercfg\..*\?mode=cluster$/,
    );
    expect(byName.get(n('sessions', 'elasticache'))!.spec.uri).toMatch(/^rediss:\/\/master\./);
    expect(byName.get(n('sessions-reader', 'elasticache'))!.spec.uri).toMatch(/^rediss:\/\/replica\./);
    expect(byName.get(n('tokens', 'elasticache-serverless'))!.metadata.labels!.engine).toBe('valkey');
    expect(byName.get(n('adhoc', 'redshift-serverless'))!.spec.auth.type).toBe('redshift-serverless');
  });

  it('switched IAM database authentication on where it was off', async () => {
    const out = await new RDSClient(harness(world.moto)).send(
      new DescribeDBInstancesCommand({ DBInstanceIdentifier: 'legacy' }),
    );
    expect(out.DBInstances![0]!.IAMDatabaseAuthenticationEnabled).toBe(true);
  });

  it('plans nothing when AWS did not change, and follows AWS when it does', async () => {
    const clients = new AwsClients();
    expect((await discoverAndPlan([ALL], clients, first)).plan).toEqual({
      create: [],
      update: [],
      delete: [],
    });

    const aws = harness(world.moto);
    await new RedshiftClient(aws).send(
      new CreateTagsCommand({
        ResourceName: `arn:aws:redshift:us-east-1:${TEST_ACCOUNT}:cluster:warehouse`,
        Tags: [{ Key: 'team', Value: 'bi' }],
      }),
    );
    await new ElastiCacheClient(aws).send(
      new DeleteReplicationGroupCommand({ ReplicationGroupId: 'sessions' }),
    );
    await new RDSClient(aws).send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: 'billing',
        Engine: 'postgres',
        DBInstanceClass: 'db.t3.micro',
        Tags: prod,
      }),
    );
    const { plan } = await discoverAndPlan([ALL], clients, first);
    expect(plan.create.map((d) => d.metadata.name)).toEqual([n('billing', 'rds')]);
    expect(plan.update.map((d) => d.metadata.name)).toEqual([n('warehouse', 'redshift')]);
    expect(plan.update[0]!.metadata.labels!.team).toBe('bi');
    expect(plan.delete.map((d) => d.metadata.name).sort()).toEqual(
      [n('sessions', 'elasticache'), n('sessions-reader', 'elasticache')].sort(),
    );
  });

  it('a scope that cannot be listed keeps its Databases and reports why', async () => {
    await createRole(world.moto, 'discovery-locked', `arn:aws:iam::${TEST_ACCOUNT}:root`, 'expected-id');
    const locked: AwsMatcher = {
      ...ALL,
      assumeRoleArn: `arn:aws:iam::${TEST_ACCOUNT}:role/discovery-locked`,
      externalId: 'wrong-id',
    };
    const { plan, errors } = await discoverAndPlan([locked], new AwsClients(), first);
    expect(errors[0]!.reason).toBe(AwsReason.AssumeRoleDenied);
    expect(plan.delete).toEqual([]);
  });

  it('takes tag changes in AWS to mean new labels, never a failure', async () => {
    await new ElastiCacheClient(harness(world.moto)).send(
      new AddTagsToResourceCommand({
        ResourceName: `arn:aws:elasticache:us-east-1:${TEST_ACCOUNT}:serverlesscache:tokens`,
        Tags: [{ Key: 'Owner Team/Ünïcode', Value: 'a value with spaces & symbols!' }],
      }),
    );
    const { databases } = await runDiscovery([ALL], new AwsClients());
    const tokens = databases.find((d) => d.metadata.name === n('tokens', 'elasticache-serverless'))!;
    expect(tokens.metadata.labels!['Owner_Team__n_code']).toBe('a_value_with_spaces_symbols');
  });
});
