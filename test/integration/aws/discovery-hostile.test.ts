// Discovery against the AWS emulator, from the side of someone who may only tag or create AWS
// resources: tags never set the labels AccessRoles rely on (discovery's own, even where AWS gave no
// value; drawbridge.dev/, kubernetes.io/ and k8s.io/ keys), and neither a drawbridge.dev/name tag nor a
// resource named like another's endpoint takes over that database's Database name.
import { AddTagsToResourceCommand, CreateDBInstanceCommand, RDSClient } from '@aws-sdk/client-rds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Database } from '../../../src/api/database.js';
import { AwsClients } from '../../../src/aws/clients.js';
import { discoverAndPlan, runDiscovery } from '../../../src/aws/discovery/index.js';
import type { AwsMatcher } from '../../../src/api/controller-config.js';
import { TEST_ACCOUNT } from '../../aws/moto.js';
import { createAuroraCluster, harness, startAwsWorld } from './fixture.js';

let world: Awaited<ReturnType<typeof startAwsWorld>>;
let rds: RDSClient;
const MATCHER: AwsMatcher = { types: ['rds', 'aurora'], regions: ['us-east-1'], tags: { env: 'prod' } };
const n = (name: string, type: string) => `${name}-${type}-us-east-1-${TEST_ACCOUNT}`;
const prod = { Key: 'env', Value: 'prod' };
const byName = (dbs: Database[]) => new Map(dbs.map((d) => [d.metadata.name, d]));

async function instance(id: string, tags: Record<string, string>): Promise<void> {
  await rds.send(
    new CreateDBInstanceCommand({
      DBInstanceIdentifier: id,
      Engine: 'postgres',
      DBInstanceClass: 'db.t3.micro',
      Tags: [prod, ...Object.entries(tags).map(([Key, Value]) => ({ Key, Value }))],
    }),
  );
}

beforeAll(async () => {
  world = await startAwsWorld();
  rds = new RDSClient(harness(world.moto));
  await instance('payments', {});
  await createAuroraCluster(rds, 'fleet', { tags: [prod], members: ['fleet-1', 'fleet-2'] });
});

afterAll(async () => {
  await world?.stop();
});

describe('discovery, with hostile tags', () => {
  it("a tag never sets discovery's labels, nor drawbridge.dev/ or kubernetes.io/ ones", async () => {
    // Aurora clusters come with no vpc-id from AWS: the tag used to fill that label in.
    await rds.send(
      new AddTagsToResourceCommand({
        ResourceName: `arn:aws:rds:us-east-1:${TEST_ACCOUNT}:cluster:fleet`,
        Tags: [
          { Key: 'vpc-id', Value: 'vpc-0prod' },
          { Key: '/region', Value: 'eu-west-1' },
          { Key: 'drawbridge.dev/tier', Value: 'gold' },
          { Key: 'app.kubernetes.io/managed-by', Value: 'drawbridge' },
          { Key: 'team', Value: 'fleet' },
        ],
      }),
    );
    const { databases, errors } = await runDiscovery([MATCHER], new AwsClients());
    expect(errors).toEqual([]);
    const fleet = byName(databases).get(n('fleet', 'aurora'))!;
    expect(fleet.metadata.labels).toEqual({
      region: 'us-east-1',
      'account-id': TEST_ACCOUNT,
      engine: 'aurora-postgresql',
      'engine-version': expect.any(String),
      'endpoint-type': 'primary',
      env: 'prod',
      team: 'fleet',
      'drawbridge.dev/origin': 'aws',
    });
    // The tags stay readable, verbatim, in the annotation.
    expect(JSON.parse(fleet.metadata.annotations!['drawbridge.dev/aws-tags']!)).toMatchObject({
      'vpc-id': 'vpc-0prod',
    });
  });

  it("a drawbridge.dev/name tag naming another database's Database does not take it over", async () => {
    const clients = new AwsClients();
    const { databases: before } = await runDiscovery([MATCHER], clients);
    const payments = byName(before).get(n('payments', 'rds'))!;
    // Someone who may create (or tag) a database of their own names it like the payments one.
    await instance('sandbox', { 'drawbridge.dev/name': n('payments', 'rds') });
    const { plan, databases } = await discoverAndPlan([MATCHER], clients, before);
    const after = byName(databases);
    expect(after.get(n('payments', 'rds'))!.spec.uri).toBe(payments.spec.uri);
    expect(after.get(n('sandbox', 'rds'))!.spec.uri).toContain('sandbox');
    expect(plan.update).toEqual([]);
    expect(plan.create.map((d) => d.metadata.name)).toEqual([n('sandbox', 'rds')]);
  });

  it("a cluster named x-reader does not take over cluster x's reader endpoint", async () => {
    const clients = new AwsClients();
    const { databases: before } = await runDiscovery([MATCHER], clients);
    const reader = byName(before).get(n('fleet-reader', 'aurora'))!;
    expect(reader.spec.uri).toContain('.cluster-ro-');
    await createAuroraCluster(rds, 'fleet-reader', { tags: [prod] });
    const { plan, databases } = await discoverAndPlan([MATCHER], clients, before);
    expect(byName(databases).get(n('fleet-reader', 'aurora'))!.spec.uri).toBe(reader.spec.uri);
    expect(plan).toEqual({ create: [], update: [], delete: [] });
  });
});
