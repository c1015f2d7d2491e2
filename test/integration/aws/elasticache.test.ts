// Seeds 000 (ElastiCache, IAM and managed users) and 002 (ElastiCache Serverless) end to end:
// redis-cli → agent → a real Redis standing in for the cache.
//   IAM users: the emulator's ElastiCache front (drawbridge_moto/elasticache_front.py) verifies the
//     token of each AUTH the way ElastiCache does and only then lets Redis accept exactly that token.
//   Managed users: the controller's rotation writes Secrets Manager and calls ModifyUser; the
//     emulator's issuance hook applies ModifyUser's passwords to the Redis user, as ElastiCache does.
import {
  AddTagsToResourceCommand,
  CreateReplicationGroupCommand,
  CreateServerlessCacheCommand,
  CreateUserCommand,
  CreateUserGroupCommand,
  ElastiCacheClient,
} from '@aws-sdk/client-elasticache';
import { ListSecretVersionIdsCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { managedUserSecretId } from '../../../src/aws/backend/elasticache.js';
import { AwsClients } from '../../../src/aws/clients.js';
import {
  ROTATION_PERIOD_MS,
  rotateAll,
  rotateManagedUser,
  startRotation,
} from '../../../src/aws/rotation.js';
import { createLogger } from '../../../src/log.js';
import { createCA, issueCertificate } from '../../../src/pki/ca.js';
import { TEST_ACCOUNT } from '../../aws/moto.js';
import { type TestAgent, startTestAgent } from '../../support/agent.js';
import { REDIS_USERS, type RedisServer, exec, startRedis } from '../../support/redis.js';
import { harness, startAwsWorld } from './fixture.js';

let world: Awaited<ReturnType<typeof startAwsWorld>>;
let redis: RedisServer;
let dir: string;
let tls: { certPem: string; keyPem: string; clientCaPem: string };
const files = { ca: '', cert: '', key: '' };
const agents: TestAgent[] = [];
const ID = { region: 'us-east-1' };
let modifyUserCalls = 0;

beforeAll(async () => {
  world = await startAwsWorld();
  redis = await startRedis();
  dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-aws-redis-'));
  const ca = await createCA({ commonName: 'aws test client CA' });
  const alice = await issueCertificate(ca, { commonName: 'alice', usage: 'client' });
  const serving = await issueCertificate(ca, {
    commonName: 'agent',
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  tls = { certPem: serving.certPem, keyPem: serving.keyPem, clientCaPem: ca.certPem };
  Object.assign(files, {
    ca: path.join(dir, 'ca.crt'),
    cert: path.join(dir, 'alice.crt'),
    key: path.join(dir, 'alice.key'),
  });
  await writeFile(files.ca, ca.certPem);
  await writeFile(files.cert, alice.certPem);
  await writeFile(files.key, alice.keyPem, { mode: 0o600 });

  // Redis users exist with their rights but no password: only AWS-sanctioned credentials open them.
  for (const u of ['iam-user-01', 'managed-user', 'pw-user'])
    await redis.cli(['ACL', 'SETUSER', u, 'on', '~*', '&*', '+@all']);
  await world.moto.onIssue(async (e) => {
    if (e.event !== 'elasticache.user.passwords') return;
    modifyUserCalls++;
    await redis.cli(['ACL', 'SETUSER', e.userName, 'resetpass', ...e.passwords.map((p) => `>${p}`)]);
  });

  const ec = new ElastiCacheClient(harness(world.moto));
  await ec.send(
    new CreateUserCommand({
      UserId: 'iam-user-01',
      UserName: 'iam-user-01',
      Engine: 'redis',
      AccessString: 'on ~* +@all',
      AuthenticationMode: { Type: 'iam' },
    }),
  );
  const managed = await ec.send(
    new CreateUserCommand({
      UserId: 'managed-user',
      UserName: 'managed-user',
      Engine: 'redis',
      AccessString: 'on ~* +@all',
      Passwords: ['initial-password-0123456789'],
    }),
  );
  await ec.send(
    new AddTagsToResourceCommand({
      ResourceName: managed.ARN,
      Tags: [{ Key: 'drawbridge.dev/managed', Value: 'true' }],
    }),
  );
  await ec.send(
    new CreateUserCommand({
      UserId: 'pw-user',
      UserName: 'pw-user',
      Engine: 'redis',
      AccessString: 'on ~* +@all',
      Passwords: ['p'.repeat(20)],
    }),
  );
  await ec.send(
    new CreateUserCommand({
      UserId: 'iam-lonely',
      UserName: 'iam-lonely',
      Engine: 'redis',
      AccessString: 'on ~* +@all',
      AuthenticationMode: { Type: 'iam' },
    }),
  );
  await ec.send(
    new CreateUserGroupCommand({
      UserGroupId: 'iam-user-group-01',
      Engine: 'redis',
      UserIds: ['default', 'iam-user-01', 'managed-user'],
    }),
  );
  await ec.send(
    new CreateReplicationGroupCommand({
      ReplicationGroupId: 'replication-group-01',
      ReplicationGroupDescription: 'seed 000',
      Engine: 'redis',
      EngineVersion: '7.1',
      UserGroupIds: ['iam-user-group-01'],
    }),
  );
  await ec.send(
    new CreateServerlessCacheCommand({
      ServerlessCacheName: 'serverless-cache-1',
      Engine: 'redis',
      UserGroupId: 'iam-user-group-01',
    }),
  );
});

afterAll(async () => {
  for (const a of agents) await a.stop();
  await redis?.stop();
  await world?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function agentFor(name: string, auth: string, port: number, aws: object): Promise<TestAgent> {
  const agent = await startTestAgent({
    database: name,
    tls,
    docs: [
      {
        apiVersion: 'drawbridge.dev/v1alpha1',
        kind: 'Database',
        metadata: { name, labels: { env: 'prod' } },
        spec: {
          protocol: 'redis',
          uri: `redis://127.0.0.1:${port}`,
          tls: { mode: 'disabled' },
          auth: { type: auth },
          aws: { region: 'us-east-1', accountId: TEST_ACCOUNT, ...aws },
        },
      },
      {
        apiVersion: 'drawbridge.dev/v1alpha1',
        kind: 'AccessRole',
        metadata: { name: 'cache' },
        spec: {
          allow: { databaseLabels: { env: '*' }, databaseUsers: ['*'] },
          options: { maxSessionTTL: '8h' },
        },
      },
      {
        apiVersion: 'drawbridge.dev/v1alpha1',
        kind: 'DatabaseUser',
        metadata: { name: 'alice' },
        spec: { subjects: [{ kind: 'User', name: 'alice' }], roles: ['cache'] },
      },
    ],
  });
  agents.push(agent);
  return agent;
}

function cliArgs(agent: TestAgent, dbUser: string, args: string[]): string[] {
  const tlsArgs = ['--tls', '--cacert', files.ca, '--cert', files.cert, '--key', files.key];
  return [
    ...tlsArgs,
    '-h',
    '127.0.0.1',
    '-p',
    String(agent.port),
    '--user',
    dbUser,
    '--pass',
    'unused',
    '--no-auth-warning',
    ...args,
  ];
}

/** redis-cli through the agent as alice, AUTHing as `dbUser` (the agent supplies the real credential). */
function cli(agent: TestAgent, dbUser: string, args: string[]): Promise<string> {
  return exec('redis-cli', cliArgs(agent, dbUser, args));
}

/** What redis-cli says when AUTH fails: its stderr (it then carries on unauthenticated). */
function authError(agent: TestAgent, dbUser: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('redis-cli', cliArgs(agent, dbUser, ['PING']), {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('close', () => resolve(err));
  });
}

const admin = REDIS_USERS.admin;

describe('ElastiCache IAM user (seed 000)', () => {
  let agent: TestAgent;
  beforeAll(async () => {
    const front = await world.moto.elasticacheFront({
      redisPort: redis.plainPort,
      adminUser: 'admin',
      adminPassword: admin.password,
      resource: 'replication-group-01',
    });
    agent = await agentFor('replication-group-01', 'elasticache-iam', front, {
      type: 'elasticache',
      identifiers: { replicationGroup: 'replication-group-01' },
    });
  });

  it('logs in with an IAM auth token that ElastiCache (the front) accepts', async () => {
    expect((await cli(agent, 'iam-user-01', ['ACL', 'WHOAMI'])).trim()).toBe('iam-user-01');
    expect((await cli(agent, 'iam-user-01', ['SET', 'k', 'v'])).trim()).toBe('OK');
  });

  it('leaves no password behind in Redis: the token was good for that AUTH only', async () => {
    const info = await redis.cli(['ACL', 'GETUSER', 'iam-user-01']);
    expect(info).not.toMatch(/[0-9a-f]{64}/);
  });

  it('says so when the ElastiCache user is not an IAM user', async () => {
    const out = await authError(agent, 'pw-user');
    expect(out).toContain('AUTH failed');
    expect(out).toContain('has authentication type "password", not "iam"');
    expect(out).toContain('authentication-mode Type=iam');
  });

  it('says so when the user does not exist in ElastiCache', async () => {
    const out = await authError(agent, 'nobody');
    expect(out).toContain('ElastiCache has no user "nobody"');
    expect(out).toContain('aws elasticache create-user --user-id nobody');
  });

  it('says so when the IAM user is in no user group', async () => {
    const out = await authError(agent, 'iam-lonely');
    expect(out).toContain('is in no user group');
    expect(out).toContain('--user-ids-to-add iam-lonely');
  });
});

describe('ElastiCache Serverless (seed 002)', () => {
  it('logs in with a ServerlessCache token; a replication-group token would be refused', async () => {
    const front = await world.moto.elasticacheFront({
      redisPort: redis.plainPort,
      adminUser: 'admin',
      adminPassword: admin.password,
      resource: 'serverless-cache-1',
      serverless: true,
    });
    const agent = await agentFor('serverless-cache-1', 'elasticache-iam', front, {
      type: 'elasticache-serverless',
      identifiers: { serverlessCache: 'serverless-cache-1' },
    });
    expect((await cli(agent, 'iam-user-01', ['ACL', 'WHOAMI'])).trim()).toBe('iam-user-01');

    // Same front, but the Database claims to be a replication group: no ResourceType, wrong host.
    const wrong = await agentFor('wrong-kind', 'elasticache-iam', front, {
      type: 'elasticache',
      identifiers: { replicationGroup: 'serverless-cache-1' },
    });
    expect(await authError(wrong, 'iam-user-01')).toMatch(/AUTH failed.*WRONGPASS/);
  });
});

describe('managed users (seed 000, Drawbridge-managed)', () => {
  const clients = () => new AwsClients();
  const secretId = managedUserSecretId('us-east-1', TEST_ACCOUNT, 'managed-user');
  let agent: TestAgent;

  beforeAll(async () => {
    agent = await agentFor('managed-cache', 'elasticache-managed', redis.plainPort, {
      type: 'elasticache',
      identifiers: { replicationGroup: 'replication-group-01' },
    });
  });

  it('rotates the tagged user into Secrets Manager and ElastiCache; the agent logs in with it', async () => {
    const results = await rotateAll(clients(), ID);
    expect(results).toEqual([{ userId: 'managed-user', outcome: 'rotated' }]);
    expect((await cli(agent, 'managed-user', ['ACL', 'WHOAMI'])).trim()).toBe('managed-user');
  });

  it('keeps the previous password valid through the next rotation, and drops the one before', async () => {
    const c = clients();
    const account = TEST_ACCOUNT;
    const later = (n: number) => new Date(Date.now() + n * ROTATION_PERIOD_MS);
    expect(await rotateManagedUser(c, ID, account, 'managed-user', later(1))).toBe('rotated');
    const twoPasswords = await redis.cli(['ACL', 'GETUSER', 'managed-user']);
    expect(twoPasswords.match(/[0-9a-f]{64}/g)).toHaveLength(2);
    expect(await rotateManagedUser(c, ID, account, 'managed-user', later(2))).toBe('rotated');
    expect((await redis.cli(['ACL', 'GETUSER', 'managed-user'])).match(/[0-9a-f]{64}/g)).toHaveLength(2);
    expect((await cli(agent, 'managed-user', ['ACL', 'WHOAMI'])).trim()).toBe('managed-user');
  });

  it('with two controller replicas rotating at once, exactly one rotation wins', async () => {
    const sm = new SecretsManagerClient(harness(world.moto));
    const versions = async () =>
      (await sm.send(new ListSecretVersionIdsCommand({ SecretId: secretId }))).Versions?.length ?? 0;
    const before = await versions();
    const now = new Date(Date.now() + 3 * ROTATION_PERIOD_MS);
    const outcomes = await Promise.all([
      rotateManagedUser(clients(), ID, TEST_ACCOUNT, 'managed-user', now),
      rotateManagedUser(clients(), ID, TEST_ACCOUNT, 'managed-user', now),
    ]);
    expect(outcomes.filter((o) => o === 'rotated')).toHaveLength(1);
    expect(await versions()).toBe(before + 1);
    // A replica that starts after the winner finished (the interleaving CI once hit) leaves the slot's version.
    expect(await rotateManagedUser(clients(), ID, TEST_ACCOUNT, 'managed-user', now)).toBe('current');
    expect(await versions()).toBe(before + 1);
    expect((await cli(agent, 'managed-user', ['ACL', 'WHOAMI'])).trim()).toBe('managed-user');
  });

  it('the controller loop rotates once per period and stops when asked', async () => {
    const before = modifyUserCalls;
    const loop = startRotation(clients(), [ID], createLogger('rotation-test', 'silent'), 1_000);
    try {
      await vi.waitFor(() => expect(modifyUserCalls).toBeGreaterThanOrEqual(before + 2), {
        timeout: 5_000,
        interval: 50,
      });
    } finally {
      loop.stop();
    }
    const after = modifyUserCalls;
    await new Promise((r) => setTimeout(r, 1_500));
    expect(modifyUserCalls).toBe(after);
    expect((await cli(agent, 'managed-user', ['ACL', 'WHOAMI'])).trim()).toBe('managed-user');
  });

  it('the agent falls back to the previous password while ElastiCache has not switched yet', async () => {
    // Secrets Manager moved on but ModifyUser has not happened: Redis knows only the older ones.
    const acl = await redis.cli(['ACL', 'GETUSER', 'managed-user']);
    const c = clients();
    const sm = c.secrets(ID);
    const { PutSecretValueCommand } = await import('@aws-sdk/client-secrets-manager');
    await sm.send(new PutSecretValueCommand({ SecretId: secretId, SecretString: 'n'.repeat(128) }));
    expect((await cli(agent, 'managed-user', ['ACL', 'WHOAMI'])).trim()).toBe('managed-user');
    expect(await redis.cli(['ACL', 'GETUSER', 'managed-user'])).toBe(acl);
  });
});
