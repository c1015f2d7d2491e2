import { describe, expect, it } from 'vitest';
import { formatDuration, reachable, reachableFrom } from '../../../src/cli/db/reach.js';
import { renderTable } from '../../../src/cli/db/table.js';
import { db, person, role, user } from '../authz/fixtures.js';

const orders = db('orders', { env: 'prod', team: 'orders' });
const cache = db('cache', { env: 'prod' }, 'redis');
const staging = db('staging', { env: 'staging' });
const alice = person('alice', ['devs']);

describe('reachableFrom', () => {
  it.each([
    {
      name: 'lists the allowed users and names of a matching role',
      roles: [
        role('dev', {
          databaseLabels: { env: 'prod' },
          databaseUsers: ['app', 'ro'],
          databaseNames: ['orders'],
        }),
      ],
      database: orders,
      want: { dbUsers: ['app', 'ro'], exceptUsers: [], dbNames: ['orders'], ttlMs: 8 * 3_600_000 },
    },
    {
      name: 'leaves out users a deny rule names',
      roles: [
        role('dev', { databaseLabels: { env: '*' }, databaseUsers: ['app', 'postgres'] }),
        role('no-super', {}, { databaseUsers: ['postgres'] }, '1h'),
      ],
      database: orders,
      want: { dbUsers: ['app'], exceptUsers: [], dbNames: [], ttlMs: 3_600_000 },
    },
    {
      name: 'shows deny exceptions next to a wildcard',
      roles: [
        role('dev', { databaseLabels: { env: '*' }, databaseUsers: ['*'] }, { databaseUsers: ['postgres'] }),
      ],
      database: orders,
      want: { dbUsers: ['*'], exceptUsers: ['postgres'], dbNames: [], ttlMs: 8 * 3_600_000 },
    },
    {
      name: 'expands trait templates for the person',
      roles: [
        role('self', { databaseLabels: { team: '{{traits.teams}}' }, databaseUsers: ['{{traits.dbUsers}}'] }),
      ],
      traits: { teams: ['orders'], dbUsers: ['alice'] },
      database: orders,
      want: { dbUsers: ['alice'], exceptUsers: [], dbNames: [], ttlMs: 8 * 3_600_000 },
    },
    {
      name: 'gives no database names for Redis',
      roles: [role('dev', { databaseLabels: { env: 'prod' }, databaseUsers: ['app'], databaseNames: ['*'] })],
      database: cache,
      want: { dbUsers: ['app'], exceptUsers: [], dbNames: [], ttlMs: 8 * 3_600_000 },
    },
  ])('$name', ({ roles, traits, database, want }) => {
    const users = [
      user(
        'alice',
        [{ kind: 'Group', name: 'devs' }],
        roles.map((r) => r.metadata.name),
        traits,
      ),
    ];
    const row = reachableFrom(alice, database, { roles, users });
    expect(row).toMatchObject(want);
  });

  it.each([
    ['no DatabaseUser names the person', [user('bob', [{ kind: 'User', name: 'bob' }], ['dev'])], orders],
    ['the labels do not match', [user('alice', [{ kind: 'User', name: 'alice' }], ['dev'])], staging],
  ])('is undefined when %s', (_why, users, database) => {
    const roles = [role('dev', { databaseLabels: { env: 'prod' }, databaseUsers: ['app'] })];
    expect(reachableFrom(alice, database, { roles, users })).toBeUndefined();
  });

  it('is undefined when a deny rule blocks the database by its labels', () => {
    const roles = [
      role(
        'dev',
        { databaseLabels: { env: '*' }, databaseUsers: ['app'] },
        { databaseLabels: { env: 'prod' } },
      ),
    ];
    const users = [user('alice', [{ kind: 'User', name: 'alice' }], ['dev'])];
    expect(reachableFrom(alice, orders, { roles, users })).toBeUndefined();
  });
});

describe('reachable', () => {
  it('applies each namespace its own policy and sorts by namespace, then name', () => {
    const inNs = (d: ReturnType<typeof db>, namespace: string) => ({
      ...d,
      metadata: { ...d.metadata, namespace },
    });
    const policy = {
      roles: [role('dev', { databaseLabels: { env: '*' }, databaseUsers: ['app'] })],
      users: [user('alice', [{ kind: 'User', name: 'alice' }], ['dev'])],
    };
    const rows = reachable(alice, [inNs(orders, 'b'), inNs(staging, 'a'), inNs(cache, 'c')], (ns) =>
      ns === 'c' ? { roles: [], users: [] } : policy,
    );
    expect(rows.map((r) => `${r.database.metadata.namespace}/${r.database.metadata.name}`)).toEqual([
      'a/staging',
      'b/orders',
    ]);
  });
});

describe('formatDuration', () => {
  it.each([
    [8 * 3_600_000, '8h'],
    [90 * 60_000, '1h30m'],
    [45_000, '45s'],
    [0, '0s'],
    [Infinity, '-'],
  ])('%d ms → %s', (ms, text) => expect(formatDuration(ms)).toBe(text));
});

describe('renderTable', () => {
  it('pads columns to the widest cell, kubectl style', () => {
    expect(
      renderTable(
        ['NAME', 'PROTOCOL'],
        [
          ['orders', 'postgres'],
          ['c', 'redis'],
        ],
      ),
    ).toBe('NAME     PROTOCOL\norders   postgres\nc        redis\n');
  });
});
