// ElastiCache (Redis/Valkey, cluster mode on and off) and ElastiCache Serverless backend logins.
//  - elasticache-iam: a fresh IAM auth token per backend connection (see presign.ts). AWS cuts an
//    IAM-authenticated connection after 12 hours; `expiresAt` tells the engine when to re-AUTH with a
//    new token before that. DescribeUsers is checked first: a user whose authentication type is not
//    `iam` fails with UserNotIAMEnabled and the fix.
//  - elasticache-managed: the password the controller rotates (rotation.ts), read from Secrets
//    Manager; the previous one is offered as a fallback while ElastiCache still accepts both.
import { DescribeUsersCommand } from '@aws-sdk/client-elasticache';
import { GetSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import type { CredentialProvider } from '../../agent/credentials.js';
import { Identifier, awsSpec, identifier, identityOf, type AwsClients } from '../clients.js';
import type { AwsIdentity } from '../credentials.js';
import { AwsError, AwsReason, awsCall, isAwsError } from '../errors.js';
import { elasticacheAuthToken } from '../presign.js';

/** AWS closes IAM-authenticated connections 12 h after AUTH; re-AUTH this much earlier. */
const IAM_CONNECTION_LIFETIME_MS = 12 * 3_600_000;
const REAUTH_MARGIN_MS = 15 * 60_000;
const USER_CHECK_EVERY_MS = 5 * 60_000;

/** Secrets Manager name holding a managed ElastiCache user's password. */
export function managedUserSecretId(region: string, account: string, userId: string): string {
  return `drawbridge/elasticache/${region}/${account}/user/${userId}`;
}

export function elasticacheIamProvider(clients: AwsClients): CredentialProvider {
  const checked = new Map<string, number>();
  return {
    async get({ database, dbUser }) {
      const name = database.metadata.name;
      const aws = awsSpec(database.spec, name);
      const serverless = aws.type === 'elasticache-serverless';
      const resourceName = identifier(
        aws,
        name,
        serverless ? Identifier.serverlessCache : Identifier.replicationGroup,
      );
      const id = identityOf(aws);
      const key = `${aws.region}|${dbUser}`;
      if (Date.now() - (checked.get(key) ?? 0) > USER_CHECK_EVERY_MS) {
        await checkIamUser(clients, id, dbUser);
        checked.set(key, Date.now());
      }
      const credentials = await clients.credentials.for(id)();
      const password = await elasticacheAuthToken({
        resourceName,
        userId: dbUser,
        serverless,
        region: aws.region,
        credentials,
      });
      return {
        kind: 'password',
        user: dbUser,
        password,
        expiresAt: new Date(Date.now() + IAM_CONNECTION_LIFETIME_MS - REAUTH_MARGIN_MS),
      };
    },
  };
}

function createUserHint(userId: string): string {
  return (
    `create the user with IAM auth (aws elasticache create-user --user-id ${userId} --user-name ${userId} ` +
    '--authentication-mode Type=iam --engine redis ...), keep user name = user ID, and add it to the user group ' +
    'of the cache'
  );
}

async function checkIamUser(clients: AwsClients, id: AwsIdentity, userId: string): Promise<void> {
  const out = await awsCall({ action: `elasticache:DescribeUsers ${userId}` }, () =>
    clients.elasticache(id).send(new DescribeUsersCommand({ UserId: userId })),
  ).catch((err: unknown) => {
    if (!isAwsError(err, AwsReason.NotFound)) throw err;
    throw new AwsError(AwsReason.NotFound, `ElastiCache has no user "${userId}"`, createUserHint(userId), {
      cause: err,
    });
  });
  const user = out.Users?.[0];
  const type = user?.Authentication?.Type;
  if (type !== 'iam') {
    throw new AwsError(
      AwsReason.UserNotIAMEnabled,
      `ElastiCache user "${userId}" has authentication type "${type ?? 'unknown'}", not "iam"`,
      `${createUserHint(userId)}; or use auth type elasticache-managed for password users`,
    );
  }
  if (!user?.UserGroupIds?.length) {
    throw new AwsError(
      AwsReason.UserNotIAMEnabled,
      `ElastiCache user "${userId}" is in no user group, so no cache accepts it`,
      `add it to the cache's user group: aws elasticache modify-user-group --user-group-id <group> --user-ids-to-add ${userId}`,
    );
  }
  if (user?.UserName !== user?.UserId) {
    throw new AwsError(
      AwsReason.UserNotIAMEnabled,
      `ElastiCache user ID "${user?.UserId}" differs from its user name "${user?.UserName}"`,
      'IAM authentication needs identical user ID and user name: recreate the user',
    );
  }
}

export function elasticacheManagedProvider(clients: AwsClients): CredentialProvider {
  return {
    async get({ database, dbUser }) {
      const aws = awsSpec(database.spec, database.metadata.name);
      const id = identityOf(aws);
      const account = aws.accountId ?? (await clients.account(id));
      const secretId = managedUserSecretId(aws.region, account, dbUser);
      const read = (stage: 'AWSCURRENT' | 'AWSPREVIOUS') =>
        awsCall({ action: `secretsmanager:GetSecretValue ${secretId} (${stage})` }, async () => {
          const out = await clients
            .secrets(id)
            .send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: stage }));
          return out.SecretString;
        });
      const current = await read('AWSCURRENT').catch((err: unknown) => {
        if (isAwsError(err, AwsReason.NotFound)) {
          throw new AwsError(
            AwsReason.NotFound,
            `no managed password for ElastiCache user "${dbUser}" (secret ${secretId})`,
            `tag the ElastiCache user with drawbridge.dev/managed=true so the controller manages it, and wait for its first rotation`,
            { cause: err },
          );
        }
        throw err;
      });
      // Right after the first rotation there is no previous version: nothing to fall back to.
      const previous = await read('AWSPREVIOUS').catch((err: unknown) => {
        if (isAwsError(err, AwsReason.NotFound)) return undefined;
        throw err;
      });
      return {
        kind: 'password',
        user: dbUser,
        password: current!,
        ...(previous && previous !== current ? { fallbackPasswords: [previous] } : {}),
      };
    },
  };
}
