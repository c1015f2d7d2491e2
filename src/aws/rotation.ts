// Managed ElastiCache users (AWS tag drawbridge.dev/managed=true): the controller rotates each one's
// password every 15 minutes into Secrets Manager (drawbridge/elasticache/<region>/<account>/user/<id>)
// and sets it on the user with ModifyUser, keeping the previous password valid alongside the new one
// so agents that still hold the old one keep logging in (they fall back to AWSPREVIOUS).
//
// Two controller replicas may rotate at once. The PutSecretValue idempotency token is derived from
// (secret, 15-minute slot) alone, so it names the slot's one version however the replicas interleave:
// racing writers send the same token, Secrets Manager keeps the first value and refuses the second
// (ResourceExistsException), and the loser adopts the winner's password; a replica that reads after
// the winner finds AWSCURRENT already at the slot's version and leaves it. One rotation per slot.
import { createHash, randomBytes } from 'node:crypto';
import {
  DescribeUsersCommand,
  ListTagsForResourceCommand,
  ModifyUserCommand,
} from '@aws-sdk/client-elasticache';
import {
  CreateSecretCommand,
  GetSecretValueCommand,
  type GetSecretValueCommandOutput,
  PutSecretValueCommand,
} from '@aws-sdk/client-secrets-manager';
import type { Logger } from '../log.js';
import type { AwsClients } from './clients.js';
import type { AwsIdentity } from './credentials.js';
import { managedUserSecretId } from './backend/elasticache.js';
import { AwsReason, awsCall, classifyAwsError, isAwsError } from './errors.js';

const MANAGED_TAG = 'drawbridge.dev/managed';
export const ROTATION_PERIOD_MS = 15 * 60_000;

export type RotationOutcome = 'rotated' | 'adopted' | 'current';

/** 128 hex characters: 512 random bits, within ElastiCache's 16–128 character password rule. */
export function newPassword(): string {
  return randomBytes(64).toString('hex');
}

/** Same secret and slot → same token on every replica; 32 hex digits formatted as a UUID. */
export function rotationToken(secretId: string, slot: number): string {
  const h = createHash('sha256').update(`${secretId}|${slot}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
}

async function findManagedUsers(clients: AwsClients, id: AwsIdentity): Promise<string[]> {
  const ec = clients.elasticache(id);
  const users = await awsCall({ action: 'elasticache:DescribeUsers' }, () =>
    ec.send(new DescribeUsersCommand({})),
  );
  const managed: string[] = [];
  for (const u of users.Users ?? []) {
    if (!u.ARN || !u.UserId || u.UserName === 'default') continue;
    const tags = await awsCall({ action: `elasticache:ListTagsForResource ${u.UserId}` }, () =>
      ec.send(new ListTagsForResourceCommand({ ResourceName: u.ARN })),
    );
    if (tags.TagList?.some((t) => t.Key === MANAGED_TAG && t.Value === 'true')) managed.push(u.UserId);
  }
  return managed;
}

export async function rotateManagedUser(
  clients: AwsClients,
  id: AwsIdentity,
  account: string,
  userId: string,
  now: Date = new Date(),
  periodMs = ROTATION_PERIOD_MS,
): Promise<RotationOutcome> {
  const sm = clients.secrets(id);
  const secretId = managedUserSecretId(id.region, account, userId);
  const current = await readCurrent(clients, id, secretId, userId);
  const slot = Math.floor(now.getTime() / periodMs);
  const token = rotationToken(secretId, slot);
  if (current?.VersionId === token) return 'current';
  if (current?.CreatedDate && Math.floor(current.CreatedDate.getTime() / periodMs) === slot) return 'current';

  let password = newPassword();
  let outcome: RotationOutcome = 'rotated';
  try {
    await sm.send(
      new PutSecretValueCommand({ SecretId: secretId, SecretString: password, ClientRequestToken: token }),
    );
  } catch (err) {
    if ((err as { name?: string }).name !== 'ResourceExistsException') {
      throw classifyAwsError(err, { action: `secretsmanager:PutSecretValue ${secretId}` });
    }
  }
  // The version named by the token holds the one password of this slot. AWS refuses a second write of it
  // (ResourceExistsException); reading it back also covers a store that answered both writers with success.
  const stored = await sm.send(new GetSecretValueCommand({ SecretId: secretId, VersionId: token }));
  if (stored.SecretString !== password) {
    password = stored.SecretString!;
    outcome = 'adopted';
  }
  const passwords =
    current?.SecretString && current.SecretString !== password
      ? [current.SecretString, password]
      : [password];
  await awsCall({ action: `elasticache:ModifyUser ${userId}` }, () =>
    clients.elasticache(id).send(new ModifyUserCommand({ UserId: userId, Passwords: passwords })),
  );
  return outcome;
}

/** The AWSCURRENT version, creating the (empty) secret on first use; undefined when it has no value yet. */
async function readCurrent(
  clients: AwsClients,
  id: AwsIdentity,
  secretId: string,
  userId: string,
): Promise<GetSecretValueCommandOutput | undefined> {
  const sm = clients.secrets(id);
  try {
    return await awsCall({ action: `secretsmanager:GetSecretValue ${secretId}` }, () =>
      sm.send(new GetSecretValueCommand({ SecretId: secretId, VersionStage: 'AWSCURRENT' })),
    );
  } catch (err) {
    if (!isAwsError(err, AwsReason.NotFound)) throw err;
  }
  await sm
    .send(
      new CreateSecretCommand({
        Name: secretId,
        Description: `Password of ElastiCache user ${userId}, rotated by Drawbridge`,
        Tags: [{ Key: MANAGED_TAG, Value: 'true' }],
      }),
    )
    .catch((err: unknown) => {
      // The other replica created it a moment ago: fine.
      if ((err as { name?: string }).name !== 'ResourceExistsException') throw err;
    });
  return undefined;
}

export interface RotationResult {
  userId: string;
  outcome?: RotationOutcome;
  error?: unknown;
}

/** Rotates every managed user of an identity's region; per-user failures are returned, not thrown. */
export async function rotateAll(
  clients: AwsClients,
  id: AwsIdentity,
  now = new Date(),
  periodMs = ROTATION_PERIOD_MS,
): Promise<RotationResult[]> {
  const account = await clients.account(id);
  const results: RotationResult[] = [];
  for (const userId of await findManagedUsers(clients, id)) {
    try {
      results.push({ userId, outcome: await rotateManagedUser(clients, id, account, userId, now, periodMs) });
    } catch (error) {
      results.push({ userId, error });
    }
  }
  return results;
}

/**
 * The controller's rotation loop: every region's managed users once per period, at the start of each
 * slot (so replicas contend for the same slot and the idempotency token picks one). Errors are logged
 * (without secrets) and retried next period.
 */
export function startRotation(
  clients: AwsClients,
  identities: AwsIdentity[],
  log: Logger,
  periodMs = ROTATION_PERIOD_MS,
): { stop(): void } {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const round = async () => {
    for (const id of identities) {
      try {
        for (const r of await rotateAll(clients, id, new Date(), periodMs)) {
          if (r.error)
            log.warn({ err: r.error, region: id.region, user: r.userId }, 'managed user rotation failed');
          else log.debug({ region: id.region, user: r.userId, outcome: r.outcome }, 'managed user rotation');
        }
      } catch (err) {
        log.warn({ err, region: id.region }, 'listing managed ElastiCache users failed');
      }
    }
    if (!stopped) timer = setTimeout(() => void round(), periodMs - (Date.now() % periodMs));
  };
  void round();
  return {
    stop() {
      stopped = true;
      clearTimeout(timer);
    },
  };
}
