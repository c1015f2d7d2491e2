// Builders for access-engine tests: plain objects, defaults applied by the real zod schemas.
import { AccessRole, type AllowRule as AccessRule } from '../../../src/api/access.js';
import { DatabaseUser } from '../../../src/api/access.js';
import { Database } from '../../../src/api/database.js';
import type { Identity } from '../../../src/authn/identity.js';

export function db(
  name: string,
  labels: Record<string, string> = {},
  protocol: 'postgres' | 'redis' = 'postgres',
) {
  return Database.parse({
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'Database',
    metadata: { name, labels },
    spec: {
      protocol,
      uri: protocol === 'postgres' ? 'postgres://db:5432' : 'rediss://cache:6379',
      auth: { type: 'passthrough' },
    },
  });
}

export function role(name: string, allow: AccessRule, deny: AccessRule = {}, maxSessionTTL = '8h') {
  return AccessRole.parse({
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'AccessRole',
    metadata: { name },
    spec: { allow, deny, options: { maxSessionTTL } },
  });
}

export function user(
  name: string,
  subjects: { kind: 'User' | 'Group' | 'ServiceAccount'; name: string; namespace?: string }[],
  roles: string[],
  traits: Record<string, string[]> = {},
) {
  return DatabaseUser.parse({
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'DatabaseUser',
    metadata: { name },
    spec: { subjects, roles, traits },
  });
}

export function person(name: string, groups: string[] = []): Identity {
  return { user: name, groups, source: 'certificate' };
}
