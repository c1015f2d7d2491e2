import { describe, expect, it } from 'vitest';
import type { Identity } from '../../../src/authn/identity.js';
import { certificateOutlivesRoles, checkAccess, type Policy } from '../../../src/authz/engine.js';
import { db, person, role, user } from './fixtures.js';

const prod = db('orders', { env: 'prod', team: 'payments' });
const staging = db('orders-staging', { env: 'staging', team: 'payments' });

const policy: Policy = {
  roles: [
    role('reader', {
      databaseLabels: { env: ['staging', 'prod'] },
      databaseUsers: ['reader'],
      databaseNames: ['orders'],
    }),
    role(
      'dba',
      { databaseLabels: { '*': '*' }, databaseUsers: ['*'], databaseNames: ['*'] },
      { databaseUsers: ['postgres'] },
    ),
    role('self', {
      databaseLabels: { env: 'staging' },
      databaseUsers: ['{{traits.dbUsers}}'],
      databaseNames: ['{{traits.dbNames}}'],
    }),
    role('no-prod', {}, { databaseLabels: { env: 'prod' } }),
    role(
      'regex',
      { databaseLabels: { team: '^pay(ments)?$' }, databaseUsers: ['app-*'], databaseNames: ['orders'] },
      {},
      '30m',
    ),
    role('short', { databaseLabels: { env: 'nothing' } }, {}, '5m'),
  ],
  users: [
    user('alice', [{ kind: 'User', name: 'alice' }], ['reader']),
    user('dbas', [{ kind: 'Group', name: 'dba' }], ['dba']),
    user('bob', [{ kind: 'User', name: 'bob' }], ['self'], {
      dbUsers: ['bob', 'bob_ro'],
      dbNames: ['bobdb'],
    }),
    user('carol', [{ kind: 'User', name: 'carol' }], ['dba', 'no-prod']),
    user('app', [{ kind: 'ServiceAccount', name: 'api', namespace: 'shop' }], ['regex', 'short']),
  ],
};

// [who, database, dbUser, dbName, allowed, reason fragment]
const cases: [string, ReturnType<typeof person>, typeof prod, string, string | undefined, boolean, RegExp][] =
  [
    ['alice as reader on prod/orders', person('alice'), prod, 'reader', 'orders', true, /role "reader"/],
    [
      'alice as wrong db user',
      person('alice'),
      prod,
      'admin',
      'orders',
      false,
      /"admin" is not in allow.databaseUsers/,
    ],
    [
      'alice on wrong database name',
      person('alice'),
      prod,
      'reader',
      'other',
      false,
      /"other" is not in allow.databaseNames/,
    ],
    [
      'alice on Redis (no db name)',
      person('alice'),
      db('cache', { env: 'prod' }, 'redis'),
      'reader',
      undefined,
      true,
      /reader/,
    ],
    ['stranger', person('mallory'), prod, 'reader', 'orders', false, /not a subject of any DatabaseUser/],
    ['dba group any user', person('dan', ['dba']), prod, 'anyone', 'x', true, /role "dba"/],
    [
      'deny wins: dba as postgres',
      person('dan', ['dba']),
      prod,
      'postgres',
      'x',
      false,
      /denied by role "dba": database user "postgres" matches deny/,
    ],
    ['traits expand for bob', person('bob'), staging, 'bob_ro', 'bobdb', true, /role "self"/],
    [
      'traits do not cover other users',
      person('bob'),
      staging,
      'alice',
      'bobdb',
      false,
      /not in allow.databaseUsers \["bob","bob_ro"\]/,
    ],
    ['traits role label mismatch', person('bob'), prod, 'bob', 'bobdb', false, /label env=prod/],
    [
      'label-only deny wins across roles',
      person('carol'),
      prod,
      'x',
      'y',
      false,
      /denied by role "no-prod": database labels match deny/,
    ],
    ['label-only deny does not touch other dbs', person('carol'), staging, 'x', 'y', true, /role "dba"/],
    [
      'service account + regex + glob',
      { user: 'system:serviceaccount:shop:api', groups: [], source: 'token' },
      prod,
      'app-ro',
      'orders',
      true,
      /role "regex"/,
    ],
    [
      'service account in other namespace',
      { user: 'system:serviceaccount:other:api', groups: [], source: 'token' },
      prod,
      'app-ro',
      'orders',
      false,
      /not a subject/,
    ],
    [
      'glob mismatch',
      { user: 'system:serviceaccount:shop:api', groups: [], source: 'token' },
      prod,
      'web',
      'orders',
      false,
      /"web" is not in allow.databaseUsers \["app-\*"\]/,
    ],
  ];

describe('checkAccess', () => {
  it.each(cases)('%s', (_name, who, database, dbUser, dbName, allowed, reason) => {
    const d = checkAccess(who, { database, dbUser, dbName }, policy);
    expect(d.allowed).toBe(allowed);
    expect(d.reason).toMatch(reason);
  });

  it('uses the smallest maxSessionTTL of all bound roles', () => {
    const d = checkAccess(
      { user: 'system:serviceaccount:shop:api', groups: [], source: 'token' },
      { database: prod, dbUser: 'app-1', dbName: 'orders' },
      policy,
    );
    expect(d.allowed && d.ttlMs).toBe(5 * 60_000);
  });

  it('an empty allow rule grants nothing', () => {
    const p: Policy = {
      roles: [role('empty', {})],
      users: [user('u', [{ kind: 'User', name: 'u' }], ['empty'])],
    };
    const d = checkAccess(person('u'), { database: prod, dbUser: 'x', dbName: 'y' }, p);
    expect(d).toMatchObject({ allowed: false });
    expect(d.reason).toMatch(/allow.databaseLabels is empty/);
  });

  it('a DatabaseUser naming a missing role grants nothing', () => {
    const p: Policy = { roles: [], users: [user('u', [{ kind: 'User', name: 'u' }], ['ghost'])] };
    expect(checkAccess(person('u'), { database: prod, dbUser: 'x', dbName: 'y' }, p).allowed).toBe(false);
  });
});

describe('certificateOutlivesRoles', () => {
  const cert = (hours: number) => ({
    ...person('alice'),
    issuedAt: new Date(0),
    expiresAt: new Date(hours * 3_600_000 + 60_000), // the signer backdates notBefore by 60 s
  });
  it.each<[string, Identity, number, RegExp | undefined]>([
    ['a certificate of the roles here', cert(1), 3_600_000, undefined],
    ['a shorter one', cert(0.5), 3_600_000, undefined],
    [
      'one signed under 720h roles elsewhere',
      cert(720),
      3_600_000,
      /issued for 720h, longer than the maxSessionTTL \(1h\)/,
    ],
    ['a token', { user: 'x', groups: [], source: 'token', expiresAt: new Date(9e12) }, 1000, undefined],
  ])('%s', (_n, identity, ttlMs, want) => {
    const why = certificateOutlivesRoles(identity, ttlMs);
    if (want) expect(why).toMatch(want);
    else expect(why).toBeUndefined();
  });
});
