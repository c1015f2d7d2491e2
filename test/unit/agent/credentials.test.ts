// The `password` provider: the user's key is the current password, `<user>.previous` (mid-rotation)
// the fallback the engines try next.
import { describe, expect, it } from 'vitest';
import { Database } from '../../../src/api/database.js';
import { credentialProvider, secretCredentialProviders } from '../../../src/agent/credentials.js';
import { createLogger } from '../../../src/log.js';

const database = Database.parse({
  apiVersion: 'drawbridge.dev/v1alpha1',
  kind: 'Database',
  metadata: { name: 'cache' },
  spec: {
    protocol: 'redis',
    uri: 'redis://db:6379',
    auth: { type: 'password', secretRef: { name: 'login' } },
  },
});

function passwordFor(values: Record<string, string>, dbUser = 'app') {
  const secrets = { secret: (name: string) => (name === 'login' ? values : undefined) };
  return credentialProvider(secretCredentialProviders, 'password', {
    secrets,
    log: createLogger('test', 'silent'),
  }).get({
    database,
    dbUser,
  });
}

describe('password provider', () => {
  it.each([
    ['current only', { app: 'new' }, { password: 'new' }],
    [
      'current and previous',
      { app: 'new', 'app.previous': 'old' },
      { password: 'new', fallbackPasswords: ['old'] },
    ],
    ['previous equal to current', { app: 'new', 'app.previous': 'new' }, { password: 'new' }],
    ['empty previous', { app: 'new', 'app.previous': '' }, { password: 'new' }],
    ["another user's previous", { app: 'new', 'other.previous': 'old' }, { password: 'new' }],
  ])('%s', async (_, values, want) => {
    expect(await passwordFor(values)).toEqual({ kind: 'password', user: 'app', ...want });
  });

  it('a missing Secret names both fixes: the namespace in Kubernetes, a document in the standalone file', async () => {
    const deps = { secrets: { secret: () => undefined }, log: createLogger('test', 'silent') };
    const get = credentialProvider(secretCredentialProviders, 'password', deps).get({
      database,
      dbUser: 'app',
    });
    await expect(get).rejects.toMatchObject({
      code: 'CREDENTIALS_UNAVAILABLE',
      hint: expect.stringContaining('add a Secret document named "login" to its config file'),
    });
  });

  it('a previous password alone is no login: the current one is required', async () => {
    await expect(passwordFor({ 'app.previous': 'old' })).rejects.toMatchObject({
      code: 'CREDENTIALS_UNAVAILABLE',
    });
  });
});

describe('provider choice', () => {
  it('an auth type the build does not list is refused, naming the ones it has', () => {
    const deps = { secrets: { secret: () => undefined }, log: createLogger('test', 'silent') };
    expect(() => credentialProvider(secretCredentialProviders, 'rds-iam', deps)).toThrow(
      expect.objectContaining({
        code: 'CREDENTIALS_UNAVAILABLE',
        message: 'auth type "rds-iam" is not available in this agent build',
        hint: 'use one of: password, mtls, passthrough',
      }),
    );
  });
});
