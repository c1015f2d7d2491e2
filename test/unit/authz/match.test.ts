// Patterns are written by tenants (any namespace's AccessRoles reach the controller) and matched against
// values tenants and clients choose: none may backtrack for hours and freeze the process. Each test
// first checks that the linear-time engine is the one in use (on a backtracking engine that assertion
// fails at once), and only then feeds the inputs that would block a backtracking engine for hours.
import { describe, expect, it } from 'vitest';
import { checkAccess, type Policy } from '../../../src/authz/engine.js';
import { matchAny, matchLabels, patternError } from '../../../src/authz/match.js';
import { db, person, role, user } from './fixtures.js';

const attack = 'a'.repeat(40) + 'c';

describe('patterns run in linear time', () => {
  it('a regex whose backtracking would take hours answers at once', () => {
    expect(patternError('^(a)\\1$')).toMatch(/linear time/);
    expect(matchAny(['^(a)\\1$'], 'aa')).toBeUndefined();
    expect(matchLabels({ x: ['^(a+)+b$'] }, { x: attack }).matched).toBe(false);
    expect(matchAny(['^(a+)+b$', '^(a|aa)+$'], 'a'.repeat(100_000) + 'c')).toBeUndefined();
    expect(matchAny(['^(a+)+b$'], 'aaab')).toBe('^(a+)+b$');
  });

  it('so does a glob with many stars, which compiles to a regex too', () => {
    expect(patternError('^(?=a)a$')).toMatch(/linear time/);
    const glob = 'a*'.repeat(30) + 'b';
    expect(matchAny([glob], 'a'.repeat(62) + 'c')).toBeUndefined();
    expect(matchAny([glob], 'a'.repeat(62) + 'b')).toBe(glob);
    expect(matchAny(['prod-*', 'db?'], 'db1')).toBe('db?');
  });

  it.each<[string, string, string, boolean]>([
    ['alternation', '^orders-(eu|us)$', 'orders-eu', true],
    ['classes and +', '^[a-z0-9-]+$', 'orders-2', true],
    ['named groups', '^(?<team>[a-z]+)-db$', 'pay-db', true],
    ['counted repetition within {16}', '^[a-z]{2,16}$', 'abc', true],
    ['no partial match', '^eu-.*$', 'us-eu-1', false],
  ])('%s still matches as before', (_n, pattern, value, matches) => {
    expect(patternError(pattern)).toBeUndefined();
    expect(matchAny([pattern], value) !== undefined).toBe(matches);
  });
});

describe('a pattern the engine refuses', () => {
  const policy: Policy = {
    roles: [
      role(
        'dev',
        { databaseLabels: { env: 'prod' }, databaseUsers: ['^(app)\\1$', 'app'] },
        { databaseUsers: ['^(?!app$).*$'] },
      ),
      role('ops', { databaseLabels: { env: '^(?=p)prod$' }, databaseUsers: ['*'] }),
    ],
    users: [
      user('alice', [{ kind: 'User', name: 'alice' }], ['dev']),
      user('bob', [{ kind: 'User', name: 'bob' }], ['ops']),
    ],
  };
  const prod = db('orders', { env: 'prod' });

  it('denies in a deny rule: deny wins even when it cannot be read, and says why', () => {
    const d = checkAccess(person('alice'), { database: prod, dbUser: 'app' }, policy);
    expect(d.allowed).toBe(false);
    expect(d.allowed || d.reason).toMatch(
      /matches deny\.databaseUsers "\^\(\?!app\$\)\.\*\$" \(a pattern that cannot be evaluated, so it denies: .*linear time.*; fix the role\)/,
    );
  });

  it('grants nothing in an allow rule', () => {
    expect(checkAccess(person('bob'), { database: prod, dbUser: 'x' }, policy).allowed).toBe(false);
    expect(matchAny(['^(app)\\1$'], 'appapp')).toBeUndefined();
  });
});
