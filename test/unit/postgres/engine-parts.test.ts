// Pure pieces of the engine: cancel keys, SQLSTATE mapping, startup parameters.
import { describe, expect, it } from 'vitest';
import { DrawbridgeError, type ErrorCode } from '../../../src/errors.js';
import { CancelKeys } from '../../../src/engines/postgres/cancel.js';
import { fieldsFor } from '../../../src/engines/postgres/errors.js';
import { startupRequest } from '../../../src/engines/postgres/frontend.js';

const target = { host: '127.0.0.1', port: 5432, tls: undefined };

describe('CancelKeys', () => {
  it('maps an agent key to the backend key until released', () => {
    const keys = new CancelKeys();
    const backend = { target, processId: 777, secretKey: 888 };
    const key = keys.issue(backend);
    expect(key.processId).toBeGreaterThan(0);
    expect(keys.lookup(key)).toBe(backend);
    expect(keys.lookup({ processId: key.processId, secretKey: key.secretKey ^ 1 })).toBeUndefined();
    expect(keys.lookup({ processId: 777, secretKey: 888 })).toBeUndefined();
    keys.release(key.processId);
    expect(keys.lookup(key)).toBeUndefined();
    expect(keys.size).toBe(0);
  });

  it('never hands out the same process id twice while in use', () => {
    const keys = new CancelKeys();
    const pids = new Set(
      Array.from({ length: 5000 }, () => keys.issue({ target, processId: 1, secretKey: 1 }).processId),
    );
    expect(pids.size).toBe(5000);
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
});
