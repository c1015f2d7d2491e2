// Redshift and Redshift Serverless: temporary database passwords from AWS.
//  - Redshift, database user NAME: GetClusterCredentials(AutoCreate=false) → user `IAM:NAME`; NAME in
//    lower case only (plainUser).
//  - Redshift, database user `role/NAME`: assume role NAME (chained after spec.aws.assumeRoleArn), then
//    GetClusterCredentialsWithIAM → user `IAMR:NAME`; Redshift maps the role to a database user.
//  - Redshift Serverless: GetCredentials(workgroup, database) as the (chained) role.
// The password is valid for DurationSeconds (900 s) for logging in.
import {
  GetClusterCredentialsCommand,
  GetClusterCredentialsWithIAMCommand,
  RedshiftClient,
} from '@aws-sdk/client-redshift';
import { GetCredentialsCommand, RedshiftServerlessClient } from '@aws-sdk/client-redshift-serverless';
import { backendAddress, type Database } from '../../api/database.js';
import type { BackendCredential, CredentialProvider } from '../../agent/credentials.js';
import { Identifier, awsSpec, identifier, identityOf, type AwsClients } from '../clients.js';
import { DrawbridgeError } from '../../errors.js';
import { awsCall } from '../errors.js';

const DURATION_SECONDS = 900;
const ROLE_PREFIX = 'role/';

/** `role/NAME` → NAME; undefined for a plain database user. */
function roleUser(dbUser: string): string | undefined {
  return dbUser.startsWith(ROLE_PREFIX) ? dbUser.slice(ROLE_PREFIX.length) : undefined;
}

async function roleArn(clients: AwsClients, database: Database, role: string): Promise<string> {
  const aws = awsSpec(database.spec, database.metadata.name);
  const account = aws.accountId ?? (await clients.account(identityOf(aws)));
  return `arn:aws:iam::${account}:role/${role}`;
}

/**
 * A plain Redshift user as AccessRoles checked it. Redshift user names are case-insensitive (AWS
 * documents DbUser as lower case only) while access rules compare exactly, so `AWSUSER` would slip
 * past a deny of `awsuser` to the very same user if AWS folded it: refused before AWS is asked.
 */
function plainUser(dbUser: string): string {
  const lower = dbUser.toLowerCase();
  if (dbUser === lower) return dbUser;
  throw new DrawbridgeError(
    'ACCESS_DENIED',
    `database user "${dbUser}" has upper-case letters, which Redshift does not tell from "${lower}"`,
    `connect as "${lower}"`,
  );
}

function dbNameOf(database: Database, dbName: string | undefined): string | undefined {
  return dbName ?? backendAddress(database.spec).database;
}

function password(
  user: string | undefined,
  pass: string | undefined,
  expiration: Date | undefined,
): BackendCredential {
  return {
    kind: 'password',
    user: user!,
    password: pass!,
    ...(expiration ? { expiresAt: expiration } : {}),
  };
}

export function redshiftProvider(clients: AwsClients): CredentialProvider {
  return {
    async get({ database, dbUser, dbName }) {
      const aws = awsSpec(database.spec, database.metadata.name);
      const cluster = identifier(aws, database.metadata.name, Identifier.cluster);
      const id = identityOf(aws);
      const name = dbNameOf(database, dbName);
      const role = roleUser(dbUser);
      if (role) {
        const arn = await roleArn(clients, database, role);
        const out = await awsCall(
          { action: `redshift:GetClusterCredentialsWithIAM on ${cluster} as ${arn}`, roleArn: arn },
          () =>
            clients.chained(RedshiftClient, id, arn).send(
              new GetClusterCredentialsWithIAMCommand({
                ClusterIdentifier: cluster,
                DbName: name,
                DurationSeconds: DURATION_SECONDS,
              }),
            ),
        );
        return password(out.DbUser, out.DbPassword, out.Expiration);
      }
      const user = plainUser(dbUser);
      const out = await awsCall({ action: `redshift:GetClusterCredentials on ${cluster} for ${user}` }, () =>
        clients.redshift(id).send(
          new GetClusterCredentialsCommand({
            ClusterIdentifier: cluster,
            DbUser: user,
            DbName: name,
            AutoCreate: false,
            DurationSeconds: DURATION_SECONDS,
          }),
        ),
      );
      return password(out.DbUser, out.DbPassword, out.Expiration);
    },
  };
}

export function redshiftServerlessProvider(clients: AwsClients): CredentialProvider {
  return {
    async get({ database, dbUser, dbName }) {
      const aws = awsSpec(database.spec, database.metadata.name);
      const workgroup = identifier(aws, database.metadata.name, Identifier.workgroup);
      const id = identityOf(aws);
      // Serverless maps the caller's IAM identity to the database user, so the user is always a role.
      const arn = await roleArn(clients, database, roleUser(dbUser) ?? dbUser);
      const out = await awsCall(
        { action: `redshift-serverless:GetCredentials on ${workgroup} as ${arn}`, roleArn: arn },
        () =>
          clients.chained(RedshiftServerlessClient, id, arn).send(
            new GetCredentialsCommand({
              workgroupName: workgroup,
              dbName: dbNameOf(database, dbName),
              durationSeconds: DURATION_SECONDS,
            }),
          ),
      );
      return password(out.dbUser, out.dbPassword, out.expiration);
    },
  };
}
