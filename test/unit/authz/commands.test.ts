import { describe, expect, it } from 'vitest';
import { CommandPolicy, matchCommand } from '../../../src/authz/commands.js';
import { bindRoles } from '../../../src/authz/engine.js';
import { db, person, role, user } from './fixtures.js';

const cache = db('cache', { env: 'prod' }, 'redis');
const get = { name: 'get', categories: ['read', 'string', 'fast'] };
const set = { name: 'set', categories: ['write', 'string', 'slow'] };
const flushall = { name: 'flushall', categories: ['keyspace', 'write', 'slow', 'dangerous'] };
const configGet = { name: 'config|get', categories: ['admin', 'slow', 'dangerous'] };

function policyFor(...roles: ReturnType<typeof role>[]) {
  const bound = bindRoles(person('u'), {
    roles,
    users: [
      user(
        'u',
        [{ kind: 'User', name: 'u' }],
        roles.map((r) => r.metadata.name),
      ),
    ],
  });
  return new CommandPolicy(bound, bound, cache);
}

describe('matchCommand', () => {
  it.each([
    [['get'], get, 'get'],
    [['@read'], get, '@read'],
    [['@write'], get, undefined],
    [['config'], configGet, 'config'],
    [['config|set'], configGet, undefined],
    [['*'], flushall, '*'],
    [['@all'], set, '@all'],
  ])('%j covers %o → %s', (entries, cmd, expected) => {
    expect(matchCommand(entries, cmd)).toBe(expected);
  });
});

describe('CommandPolicy', () => {
  const any = { databaseLabels: { '*': '*' }, databaseUsers: ['*'] };

  it('allows every command when an allowing role lists none', () => {
    const p = policyFor(role('all', any));
    expect(p.check(flushall).allowed).toBe(true);
  });

  it('restricts to listed commands and categories, naming the roles', () => {
    const p = policyFor(role('ro', { ...any, redisCommands: ['@read', 'ping'] }));
    expect(p.check(get).allowed).toBe(true);
    const d = p.check(set);
    expect(d).toEqual({ allowed: false, reason: 'no role allows "set" (role "ro" allows ["@read","ping"])' });
  });

  it('deny wins over allow, across roles', () => {
    const p = policyFor(
      role('all', any),
      role('safe', { databaseLabels: { x: 'y' } }, { redisCommands: ['@dangerous'] }),
    );
    expect(p.check(set).allowed).toBe(true);
    expect(p.check(flushall)).toEqual({ allowed: false, reason: 'role "safe" denies "@dangerous"' });
    expect(p.check(configGet).allowed).toBe(false);
  });

  it('a command deny scoped to other labels does not apply', () => {
    const p = policyFor(
      role('all', any),
      role('stg', {}, { databaseLabels: { env: 'staging' }, redisCommands: ['get'] }),
    );
    expect(p.check(get).allowed).toBe(true);
  });
});
