import { describe, expect, it } from 'vitest';
import { CommandPolicy, type CommandPolicyOptions, matchCommand } from '../../../src/authz/commands.js';
import { bindRoles } from '../../../src/authz/engine.js';
import { db, person, role, user } from './fixtures.js';

const cache = db('cache', { env: 'prod' }, 'redis');
const get = { name: 'get', categories: ['read', 'string', 'fast'] };
const set = { name: 'set', categories: ['write', 'string', 'slow'] };
const flushall = { name: 'flushall', categories: ['keyspace', 'write', 'slow', 'dangerous'] };
const configGet = { name: 'config|get', categories: ['admin', 'slow', 'dangerous'] };

const evalCmd = { name: 'eval', categories: ['slow', 'scripting'] };
const functionLoad = { name: 'function|load', categories: ['write', 'slow', 'scripting'] };
const scriptLoad = { name: 'script|load', categories: ['slow', 'scripting'] };

function policyFor(...roles: ReturnType<typeof role>[]) {
  return policyWith({}, ...roles);
}

function policyWith<G>(opts: CommandPolicyOptions<G>, ...roles: ReturnType<typeof role>[]) {
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
  return new CommandPolicy<G>(bound, bound, cache, opts);
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
    expect(d).toEqual({
      allowed: false,
      reason: 'no role allows "set" (role "ro" allows ["@read","ping"])',
      rule: 'no_allow_rule',
    });
  });

  it('deny wins over allow, across roles', () => {
    const p = policyFor(
      role('all', any),
      role('safe', { databaseLabels: { x: 'y' } }, { redisCommands: ['@dangerous'] }),
    );
    expect(p.check(set).allowed).toBe(true);
    expect(p.check(flushall)).toEqual({
      allowed: false,
      reason: 'role "safe" denies "@dangerous"',
      rule: 'deny_rule',
    });
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

describe('the scripting rule', () => {
  const any = { databaseLabels: { '*': '*' }, databaseUsers: ['*'] };
  const refusedBecause = (p: CommandPolicy<unknown>, why: RegExp, cmds = [evalCmd, functionLoad]) => {
    for (const cmd of cmds) {
      const d = p.check(cmd);
      expect(d.allowed).toBe(false);
      if (!d.allowed) {
        expect(d.reason).toMatch(why);
        expect(d.reason).toMatch(/allow\.redisScripting: true/);
        expect(d.rule).toBe('scripting');
      }
    }
  };

  it('a person allowed every command may script, unless a limit the agent holds applies', () => {
    expect(policyFor(role('all', any)).check(evalCmd).allowed).toBe(true);
    expect(policyFor(role('star', { ...any, redisCommands: ['*'] })).check(evalCmd).allowed).toBe(true);
    refusedBecause(
      policyWith({ scriptLimit: 'the DB number' }, role('all', any)),
      / commands inside the server.*the DB number/,
    );
  });

  it('any deny, or an allow list short of everything, refuses scripts and functions (not SCRIPT LOAD)', () => {
    const denying = policyFor(
      role('all', any),
      role('safe', { databaseLabels: { x: 'y' } }, { redisCommands: ['flushdb'] }),
    );
    refusedBecause(denying, /role "safe" denies "flushdb"/);
    expect(denying.check(scriptLoad).allowed).toBe(true);
    // A module's command in @scripting (Redis Stack's TFCALL) runs code too.
    refusedBecause(denying, /role "safe" denies "flushdb"/, [{ name: 'tfcall', categories: ['scripting'] }]);
    const listing = policyFor(role('ro', { ...any, redisCommands: ['@read', '@scripting'] }));
    refusedBecause(listing, /no role allows every command \(role "ro" allows \["@read","@scripting"\]\)/);
    expect(listing.check(functionLoad)).toMatchObject({
      reason: expect.stringMatching(/^FUNCTION LOAD loads functions/),
    });
  });

  it('allow.redisScripting grants scripts on top of the command rules, which still apply to each command', () => {
    const p = policyWith(
      { scriptLimit: 'the DB number' },
      role('dev', any, { redisCommands: ['@dangerous'] }),
      role('scripts', { ...any, redisScripting: true }),
    );
    expect(p.check(evalCmd).allowed).toBe(true);
    expect(p.check(functionLoad).allowed).toBe(true);
    expect(p.check(flushall).allowed).toBe(false);
    const denied = policyFor(role('scripts', { ...any, redisScripting: true }, { redisCommands: ['eval'] }));
    expect(denied.check(evalCmd)).toEqual({
      allowed: false,
      reason: 'role "scripts" denies "eval"',
      rule: 'deny_rule',
    });
  });

  it("hands out the engine's guard with an allowed decision, cached per name", () => {
    const guard = () => 'checked';
    const p = policyWith({ guards: new Map([['set', guard]]) }, role('all', any));
    expect(p.check(set)).toEqual({ allowed: true, guard });
    expect(p.check(get)).toEqual({ allowed: true });
    expect(p.check(set)).toBe(p.check(set));
  });
});

describe('the server-wide rule (standalone Redis: every DB of the server)', () => {
  const any = { databaseLabels: { '*': '*' }, databaseUsers: ['*'] };
  const serverWide = { commands: new Map([['flushall', 'empties every DB']]), limit: 'this is DB 3' };

  it('refuses what acts on the whole server even to a person allowed every command, naming the fix', () => {
    const p = policyWith({ serverWide }, role('all', any));
    expect(p.check(flushall)).toEqual({
      allowed: false,
      rule: 'server_wide',
      reason:
        'FLUSHALL empties every DB, and this is DB 3; commands that act on or show the whole server need a role with allow.redisServerWide: true',
    });
    expect(p.check(get).allowed).toBe(true);
  });

  it('allow.redisServerWide lifts it as far as the command rules allow; deny still wins', () => {
    const granted = policyWith({ serverWide }, role('wide', { ...any, redisServerWide: true }));
    expect(granted.check(flushall).allowed).toBe(true);
    const denied = policyWith(
      { serverWide },
      role('wide', { ...any, redisServerWide: true }, { redisCommands: ['@dangerous'] }),
    );
    expect(denied.check(flushall)).toMatchObject({ allowed: false, rule: 'deny_rule' });
  });
});
