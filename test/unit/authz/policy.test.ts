// An AccessRole the schema refuses (stored before a bound tightened, or failing a check only zod makes)
// is left out of the policy; its deny rules must not vanish with it, so those bound to it are denied.
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { checkAccess } from '../../../src/authz/engine.js';
import { validPolicy } from '../../../src/authz/policy.js';
import { accessCounts } from '../../../src/operator/access/check.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { db, person } from './fixtures.js';

const log = pino({ level: 'silent' });
const meta = (name: string) => ({ name, namespace: 'shop', uid: name, resourceVersion: '1' });

const everything = { databaseLabels: { '*': '*' }, databaseUsers: ['*'], databaseNames: ['*'] };
const dba = { metadata: meta('dba'), spec: { allow: everything } } as unknown as KubeObject;
// 65 database users: over the schema's 64, so the role is invalid, and it denies prod.
const noProd = {
  metadata: meta('no-prod'),
  spec: {
    deny: {
      databaseLabels: { env: 'prod' },
      databaseUsers: Array.from({ length: 65 }, (_, i) => `u${i}`),
    },
  },
} as unknown as KubeObject;
const users = [
  {
    metadata: meta('carol'),
    spec: { subjects: [{ kind: 'User', name: 'carol' }], roles: ['dba', 'no-prod'] },
  },
  { metadata: meta('dave'), spec: { subjects: [{ kind: 'User', name: 'dave' }], roles: ['dba'] } },
] as unknown as KubeObject[];

describe('an invalid AccessRole', () => {
  const policy = validPolicy([dba, noProd], users, log);
  const prod = db('orders', { env: 'prod' });

  it('is left out of the policy, and named as invalid', () => {
    expect(policy.roles.map((r) => r.metadata.name)).toEqual(['dba']);
    expect([...(policy.invalidRoles ?? [])]).toEqual(['no-prod']);
  });

  it('denies the sessions of those bound to it, naming it and the fix', () => {
    const d = checkAccess(person('carol'), { database: prod, dbUser: 'u1', dbName: 'orders' }, policy);
    expect(d.allowed).toBe(false);
    if (d.allowed) return;
    expect(d.role).toBe('no-prod');
    expect(d.rule).toBe('deny');
    expect(d.reason).toMatch(/denied by role "no-prod": the role is invalid.*Valid condition/);
  });

  it('leaves those not bound to it as they were', () => {
    const d = checkAccess(person('dave'), { database: prod, dbUser: 'u1', dbName: 'orders' }, policy);
    expect(d.allowed).toBe(true);
  });

  it("is not counted as reaching a Database in the Database's status", () => {
    expect(accessCounts(policy, { env: 'prod' })).toEqual({ users: 1, roles: 1 });
  });
});
