import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Database } from '../../../src/api/database.js';
import { keepFailedScopes } from '../../../src/aws/discovery/index.js';
import {
  ORIGIN_LABEL,
  databaseLabels,
  databaseName,
  desiredDatabases,
  labelKey,
  labelValue,
  plan,
} from '../../../src/aws/discovery/found.js';
import { coversRegion, globMatch, tagsMatch } from '../../../src/aws/matchers.js';
import { ACCOUNT, found } from './fixtures.js';

const LABEL_NAME = /^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)$/;
const PREFIX = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
function validKey(key: string): boolean {
  const i = key.lastIndexOf('/');
  return i < 0 ? LABEL_NAME.test(key) : PREFIX.test(key.slice(0, i)) && LABEL_NAME.test(key.slice(i + 1));
}

describe('label sanitising', () => {
  it.each([
    ['aws:cloudformation:stack-id', 'aws_cloudformation_stack-id'],
    ['Team', 'Team'],
    ['example.com/owner', 'example.com/owner'],
    ['Example.COM/owner', 'example.com/owner'],
    ['bad prefix!/x', 'bad_prefix__x'],
    ['::', undefined],
  ])('key %j → %j', (raw, want) => {
    expect(labelKey(raw)).toBe(want);
  });

  it('turns any tag key and value into a valid label, or drops the key — never throws', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), fc.string({ maxLength: 300 }), (k, v) => {
        const key = labelKey(k);
        if (key !== undefined) expect(validKey(key)).toBe(true);
        const value = labelValue(v);
        expect(value === '' || LABEL_NAME.test(value)).toBe(true);
      }),
    );
  });

  it('keeps the AWS tags verbatim in an annotation and labels discovery facts', () => {
    const f = found('aurora', 'orders', {
      tags: { 'aws:cloudformation:stack-id': 'arn:aws:cloudformation:us-east-1:123:stack/x/y', env: 'prod' },
      vpcId: 'vpc-123',
    });
    const [db] = desiredDatabases([f]);
    expect(db!.metadata.labels).toMatchObject({
      region: 'us-east-1',
      'account-id': ACCOUNT,
      engine: 'postgres',
      'engine-version': '15.4',
      'endpoint-type': 'primary',
      'vpc-id': 'vpc-123',
      env: 'prod',
      'aws_cloudformation_stack-id': 'arn_aws_cloudformation_us-east-1_123_stack_x_y',
      [ORIGIN_LABEL]: 'aws',
    });
    expect(JSON.parse(db!.metadata.annotations!['drawbridge.dev/aws-tags']!)).toEqual(f.tags);
    expect(() => Database.parse(db)).not.toThrow();
  });

  it('never lets a tag override discovery labels', () => {
    expect(
      databaseLabels(found('rds', 'x', { tags: { region: 'fake', [ORIGIN_LABEL]: 'manual' } })),
    ).toMatchObject({
      region: 'us-east-1',
      [ORIGIN_LABEL]: 'aws',
    });
  });
});

describe('hostile tags', () => {
  it('never sets a discovery label AWS gave no value for, nor a platform or Kubernetes key', () => {
    // An Aurora cluster has no vpc-id from AWS, a serverless workgroup no engine-version: a tag
    // named after them used to become the label AccessRoles select by.
    const labels = databaseLabels(
      found('aurora', 'x', {
        vpcId: undefined,
        engineVersion: undefined,
        tags: {
          'vpc-id': 'vpc-prod',
          'engine-version': '16',
          '/region': 'eu-west-1',
          'endpoint-type!': 'instance',
          'drawbridge.dev/tier': 'gold',
          'Drawbridge.Dev/origin': 'manual',
          'app.kubernetes.io/managed-by': 'drawbridge',
          'kubernetes.io/metadata.name': 'kube-system',
          'x.k8s.io/y': 'z',
          'example.com/team': 'a',
          env: 'dev',
        },
      }),
    );
    expect(labels).toEqual({
      region: 'us-east-1',
      'account-id': ACCOUNT,
      engine: 'postgres',
      'endpoint-type': 'primary',
      'example.com/team': 'a',
      env: 'dev',
      [ORIGIN_LABEL]: 'aws',
    });
  });
});

describe('name conflicts', () => {
  const tag = (name: string) => ({ tags: { 'drawbridge.dev/name': name } });
  const prod = found('rds', 'prod');
  const prodName = `prod-rds-us-east-1-${ACCOUNT}`;
  const names = (dbs: Database[]) => dbs.map((d) => `${d.metadata.name} ${d.spec.uri}`).sort();

  it("a tag naming another database's name does not take it, in either order", () => {
    const dev = found('rds', 'dev', tag(prodName));
    for (const order of [
      [prod, dev],
      [dev, prod],
    ]) {
      const conflicts: string[] = [];
      const out = desiredDatabases(order, undefined, undefined, { onConflict: (n) => conflicts.push(n) });
      expect(names(out)).toEqual([
        `dev-rds-us-east-1-${ACCOUNT} postgres://${dev.host}:5432`,
        `${prodName} postgres://${prod.host}:5432`,
      ]);
      expect(conflicts).toEqual([prodName]);
    }
  });

  it('a name two tags ask for stays with the Database that has it, else falls back for both', () => {
    const a = found('rds', 'a', tag('orders'));
    const b = found('rds', 'b', tag('orders'));
    expect(names(desiredDatabases([a, b]))).toEqual([
      `a-rds-us-east-1-${ACCOUNT} postgres://${a.host}:5432`,
      `b-rds-us-east-1-${ACCOUNT} postgres://${b.host}:5432`,
    ]);
    const [held] = desiredDatabases([a]);
    for (const order of [
      [a, b],
      [b, a],
    ]) {
      expect(names(desiredDatabases(order, undefined, undefined, { existing: [held!] }))).toEqual([
        `b-rds-us-east-1-${ACCOUNT} postgres://${b.host}:5432`,
        `orders postgres://${a.host}:5432`,
      ]);
    }
  });

  it("a new cluster named x-reader does not take over cluster x's reader endpoint", () => {
    const reader = found('aurora', 'fleet', { endpointType: 'reader', host: 'fleet.cluster-ro.example' });
    const squatter = found('aurora', 'fleet-reader');
    const name = `fleet-reader-aurora-us-east-1-${ACCOUNT}`;
    const [held] = desiredDatabases([reader]);
    expect(held!.metadata.name).toBe(name);
    for (const order of [
      [reader, squatter],
      [squatter, reader],
    ]) {
      expect(names(desiredDatabases(order, undefined, undefined, { existing: [held!] }))).toEqual([
        `${name} postgres://${reader.host}:5432`,
      ]);
      // With no Database holding it yet, neither gets it.
      expect(desiredDatabases(order)).toEqual([]);
    }
  });

  it('one endpoint found by two matchers is no conflict', () => {
    const conflicts: string[] = [];
    const out = desiredDatabases(
      [prod, { ...prod, assumeRoleArn: 'arn:aws:iam::123456789012:role/r' }],
      undefined,
      undefined,
      {
        onConflict: (n) => conflicts.push(n),
      },
    );
    expect(out.map((d) => d.spec.aws!.assumeRoleArn)).toEqual(['arn:aws:iam::123456789012:role/r']);
    expect(conflicts).toEqual([]);
  });
});

describe('naming', () => {
  it.each([
    [found('rds', 'orders'), `orders-rds-us-east-1-${ACCOUNT}`],
    [
      found('aurora', 'Orders_DB', { endpointType: 'reader' }),
      `orders-db-reader-aurora-us-east-1-${ACCOUNT}`,
    ],
    [
      found('aurora', 'orders', { endpointType: 'custom', endpointName: 'analytics' }),
      `orders-analytics-aurora-us-east-1-${ACCOUNT}`,
    ],
    [found('elasticache', 'cache', { tags: { 'drawbridge.dev/name': 'Sessions' } }), 'sessions'],
    [
      found('elasticache', 'cache', { endpointType: 'reader', tags: { 'drawbridge.dev/name': 'sessions' } }),
      'sessions-reader',
    ],
  ])('%#: %s', (f, want) => {
    expect(databaseName(f)).toBe(want);
  });

  it('builds URIs per protocol, TLS and cluster mode', () => {
    const [plain, cluster, pg] = [
      found('elasticache', 'a', { tls: false, endpointType: 'primary' }),
      found('elasticache', 'b', { cluster: true, endpointType: 'configuration', port: 6380 }),
      found('redshift', 'c', { port: 5439 }),
    ].map((f) => desiredDatabases([f])[0]!);
    expect(plain!.spec.uri).toBe('redis://a.example.us-east-1.amazonaws.com:6379');
    expect(plain!.spec.tls.mode).toBe('disabled');
    expect(cluster!.spec.uri).toBe('rediss://b.example.us-east-1.amazonaws.com:6380?mode=cluster');
    expect(pg!.spec.uri).toBe('postgres://c.example.us-east-1.amazonaws.com:5439');
    expect(pg!.spec.auth.type).toBe('redshift');
    expect(pg!.spec.aws).toMatchObject({
      type: 'redshift',
      region: 'us-east-1',
      accountId: ACCOUNT,
      identifiers: { cluster: 'c' },
    });
  });
});

describe('plan', () => {
  const [a, b, c] = desiredDatabases([found('rds', 'a'), found('rds', 'b'), found('rds', 'c')]);
  const manual = Database.parse({
    ...structuredClone(c!),
    metadata: { name: 'manual-db', labels: { team: 'x' } },
  });

  it('creates what is new, updates what changed, deletes only what discovery owns', () => {
    const changedB = structuredClone(b!);
    changedB.metadata.labels!['engine-version'] = '16.1';
    const existing = [a!, b!, c!, manual];
    const p = plan(existing, [a!, changedB, desiredDatabases([found('rds', 'd')])[0]!]);
    expect(p.create.map((d) => d.metadata.name)).toEqual([`d-rds-us-east-1-${ACCOUNT}`]);
    expect(p.update.map((d) => d.metadata.name)).toEqual([b!.metadata.name]);
    expect(p.delete.map((d) => d.metadata.name)).toEqual([c!.metadata.name]);
  });

  it('changes nothing when nothing changed', () => {
    expect(plan([a!, b!], desiredDatabases([found('rds', 'b'), found('rds', 'a')]))).toEqual({
      create: [],
      update: [],
      delete: [],
    });
  });

  it('never overwrites a same-named object it does not own', () => {
    const theirs = Database.parse({
      ...structuredClone(a!),
      metadata: { name: a!.metadata.name, labels: { team: 'x' } },
    });
    expect(plan([theirs], [a!])).toEqual({ create: [], update: [], delete: [] });
  });

  it('keeps Databases whose scope failed to list', () => {
    const keep = keepFailedScopes(new Set([`rds/us-east-1/${ACCOUNT}`]));
    expect(plan([a!, b!], [], keep).delete).toEqual([]);
    expect(plan([a!, b!], [], keepFailedScopes(new Set(['rds/eu-west-1/*']))).delete).toHaveLength(2);
  });
});

describe('tag matchers', () => {
  it.each([
    [{ '*': '*' }, {}, true],
    [{ env: 'prod' }, { env: 'prod' }, true],
    [{ env: 'prod' }, { env: 'dev' }, false],
    [{ env: ['dev', 'stag*'] }, { env: 'staging' }, true],
    [{ env: 'prod', team: '*' }, { env: 'prod' }, false],
    [{ '*': 'orders-*' }, { app: 'orders-api' }, true],
  ])('%j on %j → %s', (selectors, tags, want) => {
    expect(tagsMatch(selectors, tags)).toBe(want);
  });
});

describe('globs', () => {
  const asRegex = (pattern: string, value: string) =>
    new RegExp(
      `^${pattern
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    ).test(value);

  it('match as the anchored regex they read as, on every short pattern and value', () => {
    const alphabet = ['a', 'b', '-', '*', '?'];
    const strings = (n: number): string[] =>
      n === 0 ? [''] : strings(n - 1).flatMap((s) => [s, ...alphabet.map((c) => s + c)]);
    const patterns = [...new Set(strings(4))];
    const values = [...new Set(strings(4))].filter((v) => !/[*?]/.test(v));
    const wrong: string[] = [];
    for (const p of patterns)
      for (const v of values) if (globMatch(p, v) !== asRegex(p, v)) wrong.push(`${p} ~ ${v}`);
    expect(wrong).toEqual([]);
    expect(patterns.length * values.length).toBeGreaterThan(90_000);
  });

  it("an admin's many-star region glob against a tenant's 100,000-character region answers at once", () => {
    const m = { types: ['rds' as const], regions: ['*-*-*-1'], tags: {} };
    expect(coversRegion(m, 'rds', '-'.repeat(100_000))).toBe(false);
    expect(coversRegion(m, 'rds', 'us-gov-west-1')).toBe(true);
  });
});
