// Shared set-up for the AWS journeys: the emulator, harness-side AWS clients (static test keys), and
// the agent's own AWS identity — IRSA-style (AWS_ROLE_ARN + web identity token file), so the code under
// test resolves credentials through the SDK's default chain exactly as in a pod.
import { IAMClient, CreateRoleCommand } from '@aws-sdk/client-iam';
import { CreateClusterCommand, RedshiftClient, type RedshiftClientConfig } from '@aws-sdk/client-redshift';
import {
  CreateDBClusterCommand,
  CreateDBInstanceCommand,
  type RDSClient,
  type Tag,
} from '@aws-sdk/client-rds';
import { TEST_ACCOUNT, type Moto, startMoto } from '../../aws/moto.js';

export const AGENT_ROLE = `arn:aws:iam::${TEST_ACCOUNT}:role/drawbridge-agent`;

/** Client config for the harness's own calls: static keys, never the agent's environment. */
export function harness(moto: Moto) {
  return {
    region: 'us-east-1',
    endpoint: moto.endpoint,
    credentials: { accessKeyId: 'testing', secretAccessKey: 'testing' },
  };
}

export function trustPolicy(principal: string, externalId?: string): string {
  return JSON.stringify({
    Version: '2012-10-17',
    Statement: [
      {
        Effect: 'Allow',
        Principal: { AWS: principal },
        Action: 'sts:AssumeRole',
        ...(externalId ? { Condition: { StringEquals: { 'sts:ExternalId': externalId } } } : {}),
      },
    ],
  });
}

/** Creates IAM role `name` that `principal` may assume (only with `externalId`, when given); returns its ARN. */
export async function createRole(
  moto: Moto,
  name: string,
  principal: string,
  externalId?: string,
): Promise<string> {
  const iam = new IAMClient(harness(moto));
  const trust = trustPolicy(principal, externalId);
  const out = await iam.send(new CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: trust }));
  return out.Role!.Arn!;
}

const AWS_ENV = [
  'AWS_ENDPOINT_URL',
  'AWS_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
  'AWS_SESSION_TOKEN',
  'AWS_PROFILE',
  'AWS_ROLE_ARN',
  'AWS_WEB_IDENTITY_TOKEN_FILE',
  'AWS_ROLE_SESSION_NAME',
];

/** Starts the emulator and makes this process (the in-process agent) run as the IRSA role. */
export async function startAwsWorld(opts: { ldap?: boolean } = {}) {
  const moto = await startMoto(opts);
  const saved = Object.fromEntries(AWS_ENV.map((k) => [k, process.env[k]]));
  try {
    await createRole(moto, 'drawbridge-agent', '*');
  } catch (err) {
    await moto.stop();
    throw err;
  }
  for (const k of AWS_ENV) delete process.env[k];
  Object.assign(process.env, moto.irsaEnv(AGENT_ROLE));
  return {
    moto,
    async stop() {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
      await moto.stop();
    },
  };
}

/** An Aurora PostgreSQL cluster with IAM authentication on, and its member instances. */
export async function createAuroraCluster(
  rds: RDSClient,
  id: string,
  opts: { tags?: Tag[]; members?: string[] } = {},
): Promise<void> {
  await rds.send(
    new CreateDBClusterCommand({
      DBClusterIdentifier: id,
      Engine: 'aurora-postgresql',
      MasterUsername: 'admin',
      MasterUserPassword: 'Admin12345',
      EnableIAMDatabaseAuthentication: true,
      ...(opts.tags ? { Tags: opts.tags } : {}),
    }),
  );
  for (const member of opts.members ?? []) {
    await rds.send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: member,
        DBClusterIdentifier: id,
        Engine: 'aurora-postgresql',
        DBInstanceClass: 'db.r6g.large',
      }),
    );
  }
}

/** A provisioned single-node Redshift cluster (moto creates it available at once). */
export async function createRedshiftCluster(
  aws: RedshiftClientConfig,
  id: string,
  tags: Tag[],
): Promise<void> {
  await new RedshiftClient(aws).send(
    new CreateClusterCommand({
      ClusterIdentifier: id,
      NodeType: 'dc2.large',
      MasterUsername: 'admin',
      MasterUserPassword: 'Admin12345',
      ClusterType: 'single-node',
      Tags: tags,
    }),
  );
}
