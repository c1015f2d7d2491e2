// RDS / Aurora PostgreSQL: an IAM auth token from @aws-sdk/rds-signer per backend connection. The token
// is the password; it is valid for 15 minutes for logging in, the connection itself lives on.
// Before the first token, DescribeDBInstances/Clusters tells whether IAM auth is on, so a disabled
// database reads "IAMAuthDisabled" with the fix instead of the backend's bare "PAM authentication failed".
import { DescribeDBClustersCommand, DescribeDBInstancesCommand } from '@aws-sdk/client-rds';
import { Signer } from '@aws-sdk/rds-signer';
import { backendAddress } from '../../api/database.js';
import type { CredentialProvider, ProviderDeps } from '../../agent/credentials.js';
import { Identifier, awsSpec, identityOf, type AwsClients, type AwsSpec } from '../clients.js';
import { AwsError, AwsReason, awsCall, isAwsError } from '../errors.js';

const CHECK_EVERY_MS = 5 * 60_000;

export function rdsIamProvider(clients: AwsClients, deps: ProviderDeps): CredentialProvider {
  const checkedAt = new Map<string, number>();
  return {
    async get({ database, dbUser }) {
      const name = database.metadata.name;
      const aws = awsSpec(database.spec, name);
      const id = identityOf(aws);
      const last = checkedAt.get(name) ?? 0;
      if (Date.now() - last > CHECK_EVERY_MS) {
        await checkIamAuth(clients, aws, name, deps);
        checkedAt.set(name, Date.now());
      }
      const { host, port } = backendAddress(database.spec);
      const signer = new Signer({
        hostname: host,
        port,
        region: aws.region,
        username: dbUser,
        credentials: clients.credentials.for(id),
      });
      const password = await awsCall({ action: `rds-db:connect token for ${dbUser}@${host}` }, () =>
        signer.getAuthToken(),
      );
      return { kind: 'password', user: dbUser, password, expiresAt: new Date(Date.now() + 15 * 60_000) };
    },
  };
}

async function checkIamAuth(
  clients: AwsClients,
  aws: AwsSpec,
  name: string,
  deps: ProviderDeps,
): Promise<void> {
  const rds = clients.rds(identityOf(aws));
  const cluster = aws.identifiers?.[Identifier.cluster];
  const instance = aws.identifiers?.[Identifier.instance];
  try {
    let enabled: boolean | undefined;
    if (cluster) {
      const out = await awsCall({ action: `rds:DescribeDBClusters ${cluster}` }, () =>
        rds.send(new DescribeDBClustersCommand({ DBClusterIdentifier: cluster })),
      );
      enabled = out.DBClusters?.[0]?.IAMDatabaseAuthenticationEnabled;
    } else if (instance) {
      const out = await awsCall({ action: `rds:DescribeDBInstances ${instance}` }, () =>
        rds.send(new DescribeDBInstancesCommand({ DBInstanceIdentifier: instance })),
      );
      enabled = out.DBInstances?.[0]?.IAMDatabaseAuthenticationEnabled;
    }
    if (enabled === false) {
      const target = cluster
        ? `modify-db-cluster --db-cluster-identifier ${cluster}`
        : `modify-db-instance --db-instance-identifier ${instance}`;
      throw new AwsError(
        AwsReason.IAMAuthDisabled,
        `IAM database authentication is disabled on ${cluster ? `cluster ${cluster}` : `instance ${instance}`} (Database ${name})`,
        `turn it on: aws rds ${target} --enable-iam-database-authentication --apply-immediately ` +
          '(or let discovery do it), then GRANT rds_iam TO the database user',
      );
    }
  } catch (err) {
    // Only a definite "disabled" blocks; a denied Describe must not stop a login that may well work.
    if (isAwsError(err, AwsReason.IAMAuthDisabled)) throw err;
    deps.log.warn(
      { err, database: name },
      'could not check whether IAM auth is enabled; trying the token anyway',
    );
  }
}
