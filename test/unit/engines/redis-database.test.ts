// spec.uri's Redis DB number: the schema accepts a number (not in cluster mode), and the backend login
// selects it, with a refusal reported as an error naming the fix.
import { describe, expect, it } from 'vitest';
import { Database, DatabaseSpec } from '../../../src/api/database.js';
import { databaseIndex, selectCommand, selectFailure } from '../../../src/engines/redis/backend-auth.js';

const issues = (uri: string) => {
  const r = DatabaseSpec.safeParse({ protocol: 'redis', uri, auth: { type: 'passthrough' } });
  return r.success ? [] : r.error.issues.map((i) => i.message);
};

const database = (uri: string) =>
  Database.parse({
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'Database',
    metadata: { name: 'cache' },
    spec: { protocol: 'redis', uri, auth: { type: 'passthrough' } },
  });

describe('spec.uri DB number', () => {
  it.each([
    ['redis://h:6379', []],
    ['redis://h:6379/', []],
    ['redis://h:6379/3', []],
    ['rediss://h/15?x=1', []],
    ['redis://h:6379/0?mode=cluster', []],
    ['redis://h:6379/3?mode=cluster', [expect.stringMatching(/^Redis Cluster has only DB 0: remove "\/3"/)]],
    ['redis://h:6379/cache', [expect.stringMatching(/^"\/cache" is not a Redis DB number/)]],
  ])('%s', (uri, want) => expect(issues(uri)).toEqual(want));

  it.each([
    ['redis://h:6379', 0, undefined],
    ['redis://h:6379/0', 0, undefined],
    ['redis://h:6379/3', 3, '*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n'],
  ])('%s selects DB %i', (uri, db, select) => {
    expect(databaseIndex(database(uri))).toBe(db);
    expect(selectCommand(database(uri))?.toString()).toBe(select);
  });
});

describe('spec.redis.seedNodes', () => {
  const seeds = (uri: string) => {
    const spec = { protocol: 'redis', uri, auth: { type: 'passthrough' }, redis: { seedNodes: ['h2:6379'] } };
    const r = DatabaseSpec.safeParse(spec);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  it('is for Redis Cluster only', () => {
    expect(seeds('rediss://h:6379?mode=cluster')).toEqual([]);
    expect(seeds('rediss://h:6379?tls=1&mode=cluster')).toEqual([]);
    expect(seeds('rediss://h:6379/2')).toEqual([
      'redis.seedNodes: seed nodes are for Redis Cluster: add ?mode=cluster to spec.uri, or remove spec.redis.seedNodes',
    ]);
  });
});

describe('selectFailure', () => {
  const db = database('redis://h:6379/3');
  it.each([
    ['+OK\r\n', undefined, undefined],
    ['-ERR DB index is out of range\r\n', 'INVALID_CONFIG', /databases/],
    [
      '-ERR SELECT is not allowed in cluster mode\r\n',
      'INVALID_CONFIG',
      /Redis Cluster has only DB 0: remove "\/3"/,
    ],
    [
      "-NOPERM this user has no permissions to run the 'select' command\r\n",
      'BACKEND_AUTH_FAILED',
      /\+select/,
    ],
  ])('%j', (reply, code, hint) => {
    const err = selectFailure(Buffer.from(reply), db);
    expect(err?.code).toBe(code);
    if (hint) expect(err?.hint).toMatch(hint);
  });
});
