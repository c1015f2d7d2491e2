// Seeds 001 (Redshift, Redshift Serverless) and 004 (RDS/Aurora) end to end: psql → agent → a real
// PostgreSQL standing in for the AWS database, with every credential coming from the AWS emulator.
//   Redshift: the emulator's issuance hook sets the issued temporary password on the role, so the
//     server accepts exactly what GetClusterCredentials(WithIAM) / GetCredentials returned.
//   RDS: pg_hba `ldap` hands the password to the emulator's LDAP verifier (drawbridge_moto/ldap.py),
//     which accepts it only if it is a genuine rds-db token for that user — RDS's PAM check, PAM-free.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CreateDBInstanceCommand, RDSClient } from '@aws-sdk/client-rds';
import { CreateClusterCommand, RedshiftClient } from '@aws-sdk/client-redshift';
import {
  CreateNamespaceCommand,
  CreateWorkgroupCommand,
  RedshiftServerlessClient,
} from '@aws-sdk/client-redshift-serverless';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_ACCOUNT } from '../../aws/moto.js';
import { type TestAgent, startTestAgent } from '../../support/agent.js';
import { type Fixture, psql, role, startFixture, user } from '../postgres/fixture.js';
import { AGENT_ROLE, createAuroraCluster, createRole, harness, startAwsWorld } from './fixture.js';

let world: Awaited<ReturnType<typeof startAwsWorld>>;
let f: Fixture;
const agents: TestAgent[] = [];
const issued: string[] = [];
const callers: string[] = [];

const ident = (s: string) => `"${s.replace(/"/g, '""')}"`;

beforeAll(async () => {
  world = await startAwsWorld({ ldap: true });
  const { moto } = world;
  f = await startFixture({
    roles: [
      { name: 'IAM:alice' },
      { name: 'IAMR:analyst' },
      { name: 'IAMR:chained-analyst' },
      { name: 'rdsalice' },
    ],
  });
  await f.pg.admin('GRANT pg_read_all_stats TO "IAM:alice"');

  // What AWS does when it issues a Redshift password: set it in the database, valid until expiry.
  await moto.onIssue(async (e) => {
    if (e.event === 'elasticache.user.passwords') return;
    issued.push(e.dbUser);
    callers.push(e.caller);
    await f.pg.admin(`ALTER ROLE ${ident(e.dbUser)} PASSWORD '${e.password}' VALID UNTIL '${e.expiration}'`);
  });
  // RDS IAM users authenticate through the emulator's token verifier.
  const hba = path.join(f.pg.dir, 'data', 'pg_hba.conf');
  const ldap = `hostssl all rdsalice 127.0.0.1/32 ldap ldapserver=127.0.0.1 ldapport=${moto.ldapPort} ldapprefix="cn=" ldapsuffix=",dc=rds"`;
  await writeFile(hba, `${ldap}\n${await readFile(hba, 'utf8')}`);
  await f.pg.admin('SELECT pg_reload_conf()');

  const aws = harness(moto);
  const rds = new RDSClient(aws);
  for (const [id, iam] of [
    ['orders', true],
    ['legacy', false],
  ] as const) {
    await rds.send(
      new CreateDBInstanceCommand({
        DBInstanceIdentifier: id,
        Engine: 'postgres',
        DBInstanceClass: 'db.t3.micro',
        EnableIAMDatabaseAuthentication: iam,
      }),
    );
  }
  await createAuroraCluster(rds, 'fleet');
  await new RedshiftClient(aws).send(
    new CreateClusterCommand({
      ClusterIdentifier: 'my-redshift',
      NodeType: 'dc2.large',
      MasterUsername: 'admin',
      MasterUserPassword: 'Admin12345',
      ClusterType: 'single-node',
    }),
  );
  const serverless = new RedshiftServerlessClient(aws);
  await serverless.send(new CreateNamespaceCommand({ namespaceName: 'analytics' }));
  await serverless.send(
    new CreateWorkgroupCommand({ workgroupName: 'analytics-wg', namespaceName: 'analytics' }),
  );
  await createRole(moto, 'analyst', `arn:aws:iam::${TEST_ACCOUNT}:root`);
  await createRole(moto, 'locked', `arn:aws:iam::${TEST_ACCOUNT}:root`, 'only-with-this-id');
  // Role chaining: the agent's IRSA role may assume redshift-access (with its external ID), and only
  // redshift-access may assume chained-analyst.
  await createRole(moto, 'redshift-access', AGENT_ROLE, 'ext-1');
  await createRole(moto, 'chained-analyst', `arn:aws:iam::${TEST_ACCOUNT}:role/redshift-access`);
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  await f?.stop();
  await world?.stop();
});

/** An agent in front of the test PostgreSQL, for a Database of the given AWS kind. */
async function agentFor(name: string, auth: string, aws: object): Promise<TestAgent> {
  const agent = await startTestAgent({
    database: name,
    tls: f.agentTls,
    docs: [
      {
        apiVersion: 'drawbridge.dev/v1alpha1',
        kind: 'Database',
        metadata: { name, labels: { env: 'prod' } },
        spec: {
          protocol: 'postgres',
          uri: `postgres://127.0.0.1:${f.pg.port}`,
          tls: { mode: 'verify-full', caSecretRef: { name: 'pg-ca', key: 'ca.crt' } },
          auth: { type: auth },
          aws: { region: 'us-east-1', accountId: TEST_ACCOUNT, ...aws },
        },
      },
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: 'pg-ca' },
        stringData: { 'ca.crt': f.pg.ca.certPem },
      },
      role('aws', { databaseLabels: { env: '*' }, databaseUsers: ['*'], databaseNames: ['*'] }),
      user('alice', ['aws'], {}),
    ],
  });
  agents.push(agent);
  return agent;
}

function conninfo(agent: TestAgent, dbUser: string): string {
  const alice = f.people.alice;
  return (
    `host=127.0.0.1 port=${agent.port} user=${dbUser} dbname=postgres sslmode=verify-full ` +
    `sslrootcert=${f.caFile} sslcert=${alice.certFile} sslkey=${alice.keyFile} connect_timeout=10`
  );
}

describe('Redshift (seed 001)', () => {
  let agent: TestAgent;
  beforeAll(async () => {
    agent = await agentFor('my-redshift', 'redshift', {
      type: 'redshift',
      identifiers: { cluster: 'my-redshift' },
    });
  });

  it('logs in as an existing database user with GetClusterCredentials (IAM:alice)', async () => {
    const r = await psql(conninfo(agent, 'alice'), 'select current_user');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('IAM:alice');
    expect(issued).toContain('IAM:alice');
  });

  it('refuses a user name with upper case before asking AWS: Redshift would not tell it from the lower-case one', async () => {
    const before = issued.length;
    const r = await psql(conninfo(agent, 'ADMIN'), 'select 1');
    expect(r.code).not.toBe(0);
    expect(issued.length).toBe(before);
    expect(r.stderr).toContain('which Redshift does not tell from "admin"');
  });

  it('gets a fresh password from AWS for every connection', async () => {
    const before = issued.length;
    expect((await psql(conninfo(agent, 'alice'), 'select 1')).stdout.trim()).toBe('1');
    expect(issued.length).toBe(before + 1);
  });

  it('logs in as an IAM role (role/analyst): assume role, GetClusterCredentialsWithIAM → IAMR:analyst', async () => {
    const r = await psql(conninfo(agent, 'role/analyst'), 'select current_user');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('IAMR:analyst');
  });

  it('names the trust-policy fix when the role cannot be assumed', async () => {
    const r = await psql(conninfo(agent, 'role/locked'), 'select 1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('not allowed to assume arn:aws:iam::123456789012:role/locked');
    expect(r.stderr).toMatch(/trust policy/);
  });
});

describe('role chaining: spec.aws.assumeRoleArn + externalId, then role/NAME', () => {
  const redshift = (externalId: string) => ({
    type: 'redshift',
    identifiers: { cluster: 'my-redshift' },
    assumeRoleArn: `arn:aws:iam::${TEST_ACCOUNT}:role/redshift-access`,
    externalId,
  });

  it('asks AWS as the assumed role', async () => {
    const agent = await agentFor('chained', 'redshift', redshift('ext-1'));
    const r = await psql(conninfo(agent, 'alice'), 'select current_user');
    expect(r.stdout.trim()).toBe('IAM:alice');
    expect(callers.at(-1)).toBe(`arn:aws:sts::${TEST_ACCOUNT}:assumed-role/redshift-access/drawbridge`);
  });

  it('chains a second hop for role/NAME (a role only the first hop may assume)', async () => {
    const agent = await agentFor('chained-2', 'redshift', redshift('ext-1'));
    const r = await psql(conninfo(agent, 'role/chained-analyst'), 'select current_user');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('IAMR:chained-analyst');
    expect(callers.at(-1)).toBe(`arn:aws:sts::${TEST_ACCOUNT}:assumed-role/chained-analyst/drawbridge`);
  });

  it('without the second hop the same role is refused (the chain is what grants it)', async () => {
    const agent = await agentFor('unchained', 'redshift', {
      type: 'redshift',
      identifiers: { cluster: 'my-redshift' },
    });
    const r = await psql(conninfo(agent, 'role/chained-analyst'), 'select 1');
    expect(r.stderr).toContain('not allowed to assume arn:aws:iam::123456789012:role/chained-analyst');
  });

  it('a wrong external ID is AssumeRoleDenied, naming sts:ExternalId', async () => {
    const agent = await agentFor('wrong-external-id', 'redshift', redshift('ext-2'));
    const r = await psql(conninfo(agent, 'alice'), 'select 1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('not allowed to assume arn:aws:iam::123456789012:role/redshift-access');
    expect(r.stderr).toContain('sts:ExternalId');
  });
});

describe('Redshift Serverless', () => {
  it('logs in as the role through GetCredentials on the workgroup', async () => {
    const agent = await agentFor('analytics', 'redshift-serverless', {
      type: 'redshift-serverless',
      identifiers: { workgroup: 'analytics-wg' },
    });
    const r = await psql(conninfo(agent, 'role/analyst'), 'select current_user');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('IAMR:analyst');
  });
});

describe('RDS (seed 004)', () => {
  it('logs in with an IAM auth token that the verifier accepts', async () => {
    const agent = await agentFor('orders', 'rds-iam', { type: 'rds', identifiers: { instance: 'orders' } });
    const r = await psql(conninfo(agent, 'rdsalice'), 'select current_user');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('rdsalice');
  });

  it('logs in to an Aurora endpoint the same way (IAM auth checked on the cluster)', async () => {
    const agent = await agentFor('fleet-reader', 'rds-iam', {
      type: 'aurora',
      identifiers: { cluster: 'fleet', endpoint: 'reader' },
    });
    const r = await psql(conninfo(agent, 'rdsalice'), 'select current_user');
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe('rdsalice');
  });

  it('the server refuses anything but a genuine token', async () => {
    const direct =
      `host=127.0.0.1 port=${f.pg.port} user=rdsalice dbname=postgres sslmode=require password=` +
      `127.0.0.1:${f.pg.port}/?Action=connect&DBUser=rdsalice connect_timeout=10`;
    const r = await psql(direct, 'select 1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('LDAP authentication failed');
  });

  it('says IAM auth is disabled, and how to turn it on, instead of a bare login failure', async () => {
    const agent = await agentFor('legacy', 'rds-iam', { type: 'rds', identifiers: { instance: 'legacy' } });
    const r = await psql(conninfo(agent, 'rdsalice'), 'select 1');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('IAM database authentication is disabled on instance legacy');
    expect(r.stderr).toContain('--enable-iam-database-authentication');
  });
});
