// Pure pieces of the engine: cancel keys, SQLSTATE mapping, startup parameters.
import { describe, expect, it } from 'vitest';
import { DrawbridgeError, type ErrorCode } from '../../../src/errors.js';
import { CancelKeys } from '../../../src/engines/postgres/cancel.js';
import { fieldsFor } from '../../../src/engines/postgres/errors.js';
import { splitOptions, startupRequest } from '../../../src/engines/postgres/frontend.js';

const target = { host: '127.0.0.1', port: 5432, tls: undefined };

describe('CancelKeys', () => {
  it("keeps the backend's process id, replaces its secret, and maps the pair until released", () => {
    const keys = new CancelKeys();
    const backend = { target, processId: 777, secretKey: 888 };
    const key = keys.issue(backend);
    expect(key.processId).toBe(777);
    expect(keys.lookup(key)).toBe(backend);
    expect(keys.lookup({ processId: 777, secretKey: key.secretKey ^ 1 })).toBeUndefined();
    if (key.secretKey !== 888) expect(keys.lookup({ processId: 777, secretKey: 888 })).toBeUndefined();
    keys.release(key);
    expect(keys.lookup(key)).toBeUndefined();
    expect(keys.size).toBe(0);
  });

  it('tells apart sessions with the same process id (two servers after a reload) by their secrets', () => {
    const keys = new CancelKeys();
    const a = { target, processId: 5, secretKey: 1 };
    const b = { target: { ...target, port: 5433 }, processId: 5, secretKey: 2 };
    const ka = keys.issue(a);
    const kb = keys.issue(b);
    expect(ka.secretKey).not.toBe(kb.secretKey);
    expect(keys.lookup(kb)).toBe(b);
    keys.releaser(kb)();
    expect(keys.lookup(kb)).toBeUndefined();
    expect(keys.lookup(ka)).toBe(a);
  });

  it('draws secrets over all 32 bits', () => {
    const keys = new CancelKeys();
    const secrets = Array.from(
      { length: 2000 },
      (_, i) => keys.issue({ target, processId: i, secretKey: 1 }).secretKey,
    );
    expect(new Set(secrets).size).toBe(2000);
    expect(secrets.some((s) => s < 0)).toBe(true);
    expect(secrets.some((s) => s > 2 ** 30)).toBe(true);
  });
});

describe('fieldsFor', () => {
  it.each<[ErrorCode, string]>([
    ['ACCESS_DENIED', '28000'],
    ['SESSION_REVOKED', '28000'],
    ['SESSION_EXPIRED', '28000'],
    ['PROTOCOL_ERROR', '08P01'],
    ['MESSAGE_TOO_LARGE', '08P01'],
    ['BACKEND_UNREACHABLE', '08006'],
    ['AGENT_SHUTDOWN', '57P01'],
  ])('sends %s as SQLSTATE %s, with its hint', (code, sqlstate) => {
    expect(fieldsFor(new DrawbridgeError(code, 'why', 'fix'))).toEqual({
      severity: 'FATAL',
      code: sqlstate,
      message: 'why',
      hint: 'fix',
    });
  });

  it('hides the text of unexpected errors', () => {
    expect(fieldsFor(new Error('secret internals'))).toMatchObject({
      code: 'XX000',
      message: 'internal error in the Drawbridge agent',
    });
  });
});

describe('startupRequest', () => {
  const req = (params: Record<string, string>) => startupRequest(new Map(Object.entries(params)));

  it('takes user and database, defaulting the database to the user', () => {
    expect(req({ user: 'alice' })).toMatchObject({ dbUser: 'alice', dbName: 'alice' });
    expect(req({ user: 'alice', database: '' })).toMatchObject({ dbName: 'alice' });
    expect(req({ user: 'alice', database: 'orders' })).toMatchObject({ dbName: 'orders' });
  });

  it('forwards client parameters and sets protocol options aside', () => {
    const r = req({
      user: 'a',
      database: 'd',
      application_name: 'psql',
      options: '-c x=1',
      '_pq_.ext': 'on',
      replication: 'off',
    });
    expect(r.forward).toEqual([
      ['application_name', 'psql'],
      ['options', '-c x=1'],
    ]);
    expect(r.unsupportedOptions).toEqual(['_pq_.ext']);
  });

  it('refuses a startup without a user, and replication connections', () => {
    expect(() => req({ database: 'x' })).toThrow('no PostgreSQL user name');
    expect(() => req({ user: 'a', replication: 'database' })).toThrow('replication connections');
  });

  it.each<Record<string, string>>([
    { options: '-c role=x' },
    { options: '-c work_mem=1MB -cROLE=x' },
    { options: '-Fc session_authorization=x' },
    { options: '--session-authorization=x' },
    { options: '-c\\ a=1 --role=x' },
    { Role: 'x' },
    { session_authorization: 'x' },
  ])('refuses settings that change the role: %o', (params: Record<string, string>) => {
    expect(req({ user: 'a', ...params }).roleChange?.message).toMatch(/changes the role/);
  });

  it('lets other options through, as PostgreSQL splits them', () => {
    expect(req({ user: 'a', options: '-c application_name=role=x -c rolex=1' }).roleChange).toBeUndefined();
    expect(splitOptions('-c a=1\\ b  -c\\\\ x')).toEqual(['-c', 'a=1 b', '-c\\', 'x']);
  });
});
