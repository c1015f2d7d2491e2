// The controller's discovery loop against fake caches and a fake AWS listing: what one round writes,
// what it leaves alone, and where failures are reported.
import { describe, expect, it } from 'vitest';
import type { Database } from '../../../src/api/database.js';
import { desiredDatabases, type FoundDatabase } from '../../../src/aws/discovery/found.js';
import type { DiscoveryResult } from '../../../src/aws/discovery/index.js';
import { AwsError, AwsReason } from '../../../src/aws/errors.js';
import type { AwsMatcher } from '../../../src/api/controller-config.js';
import { createLogger } from '../../../src/log.js';
import { DiscoveryLoop } from '../../../src/operator/aws/discovery-loop.js';
import { CredentialIssues } from '../../../src/operator/aws/issues.js';
import { ControllerEvents, podFromEnv } from '../../../src/operator/aws/report.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { found } from '../aws/fixtures.js';
import { FakeCache, RecordingEvents, RecordingWriter } from './fakes.js';

const NS = 'aws-dbs';
const log = createLogger('test', 'silent');
const ROLE = 'arn:aws:iam::123456789012:role/discovery';
const own: AwsMatcher = { types: ['rds', 'elasticache'], regions: ['us-east-1'], tags: { '*': '*' } };
const viaRole: AwsMatcher = {
  types: ['redshift'],
  regions: ['us-east-1', 'eu-west-1'],
  tags: { '*': '*' },
  assumeRoleArn: ROLE,
};
const POD = { name: 'drawbridge-controller-0', namespace: 'drawbridge-system', uid: 'pod-uid' };

/** Deep copy with every object's keys sorted, plus what the API server adds: how the informer holds it. */
function stored(db: Database): KubeObject {
  const sort = (v: unknown): unknown =>
    Array.isArray(v)
      ? v.map(sort)
      : v && typeof v === 'object'
        ? Object.fromEntries(
            Object.entries(v)
              .sort(([a], [b]) => (a < b ? -1 : 1))
              .map(([k, x]) => [k, sort(x)]),
          )
        : v;
  const obj = sort(db) as KubeObject;
  obj.metadata = {
    ...obj.metadata,
    namespace: NS,
    uid: `uid-${db.metadata.name}`,
    resourceVersion: '42',
    generation: 1,
    finalizers: ['drawbridge.dev/agent-cleanup'],
    creationTimestamp: '2026-01-01T00:00:00Z',
  };
  obj.status = { conditions: [], observedGeneration: 1 };
  return obj;
}

const ok = (...f: FoundDatabase[]): DiscoveryResult => ({
  databases: desiredDatabases(f, NS),
  found: f,
  failed: new Set(),
  errors: [],
});

const denied = new AwsError(
  AwsReason.AssumeRoleDenied,
  `not allowed to assume ${ROLE}`,
  `name the caller as Principal in the trust policy of ${ROLE}`,
);

function setup(
  listing: (m: AwsMatcher) => DiscoveryResult,
  existing: KubeObject[] = [],
  changed: string[] = [],
  issues = new CredentialIssues((k) => changed.push(k)),
  rdsCa?: { name: string; key: string },
) {
  const cache = new FakeCache(existing);
  const writer = new RecordingWriter();
  const sink = new RecordingEvents();
  const loop = new DiscoveryLoop({
    matchers: [own, viaRole],
    namespace: NS,
    databases: cache,
    writer,
    issues,
    events: new ControllerEvents(sink, POD, log),
    discover: async (m) => listing(m),
    log,
    ...(rdsCa ? { rdsCa } : {}),
  });
  return { loop, cache, writer, sink, issues, changed };
}

const orders = found('rds', 'orders');
const sessions = found('elasticache', 'sessions');
const warehouse = found('redshift', 'warehouse', { assumeRoleArn: ROLE });
const ordersName = 'orders-rds-us-east-1-123456789012';
const warehouseName = 'warehouse-redshift-us-east-1-123456789012';

/** Every matcher, one region at a time, as the loop asks. */
function listing(over: Partial<Record<string, DiscoveryResult>> = {}) {
  return (m: AwsMatcher) => {
    const key = `${m.assumeRoleArn ?? 'own'}|${m.regions.join()}`;
    expect(m.regions).toHaveLength(1);
    if (key in over) return over[key]!;
    if (key === 'own|us-east-1') return ok(orders, sessions);
    if (key === `${ROLE}|us-east-1`) return ok(warehouse);
    return ok();
  };
}

describe('DiscoveryLoop', () => {
  it('applies what AWS has into the target namespace, labelled origin=aws', async () => {
    const { loop, writer } = setup(listing());
    const plan = await loop.run();
    expect(plan.create.map((d) => d.metadata.name).sort()).toEqual(
      [ordersName, 'sessions-elasticache-us-east-1-123456789012', warehouseName].sort(),
    );
    expect(writer.ops()).toEqual(['apply Database', 'apply Database', 'apply Database']);
    const applied = writer.writes.map((w) => (w.op === 'apply' ? w.obj : undefined))[0]!;
    expect(applied.metadata).toMatchObject({ namespace: NS, labels: { 'drawbridge.dev/origin': 'aws' } });
    expect(Object.keys(applied.metadata).sort()).toEqual(['annotations', 'labels', 'name', 'namespace']);
    expect(applied).not.toHaveProperty('status');
  });

  it('writes nothing when AWS did not change, however the API server orders the object', async () => {
    const existing = desiredDatabases([orders, sessions, warehouse], NS).map(stored);
    const { loop, writer } = setup(listing(), existing);
    await loop.run();
    expect(writer.writes).toEqual([]);
  });

  it('updates changed tags and deletes what AWS no longer has, only among origin=aws objects', async () => {
    const handMade = stored(desiredDatabases([found('rds', 'manual')], NS)[0]!);
    delete handMade.metadata.labels!['drawbridge.dev/origin'];
    const sameName = stored(desiredDatabases([orders], NS)[0]!);
    delete sameName.metadata.labels!['drawbridge.dev/origin'];
    (sameName.spec as { uri: string }).uri = 'postgres://mine.internal:5432';
    const gone = stored(desiredDatabases([found('rds', 'old')], NS)[0]!);
    const existing = [handMade, sameName, gone, ...desiredDatabases([sessions, warehouse], NS).map(stored)];
    const retagged = { ...sessions, tags: { env: 'prod' } };
    const { loop, writer } = setup(listing({ 'own|us-east-1': ok(orders, retagged) }), existing);
    await loop.run();
    expect(writer.ops().sort()).toEqual(['apply Database', 'delete Database']);
    const [apply, del] = [
      writer.writes.find((w) => w.op === 'apply')!,
      writer.writes.find((w) => w.op === 'delete')!,
    ];
    expect(apply.name).toBe('sessions-elasticache-us-east-1-123456789012');
    expect(del.name).toBe('old-rds-us-east-1-123456789012');
  });

  it('keeps the Databases of a role that cannot be assumed and marks them CredentialsReady=False', async () => {
    const rdsCa = { name: 'rds-ca-bundle', key: 'ca.crt' };
    const existing = desiredDatabases([orders, sessions, warehouse], NS, rdsCa).map(stored);
    const failing: DiscoveryResult = { ...ok(), failed: new Set(['redshift/us-east-1/*']), errors: [denied] };
    const { loop, writer, sink, issues, changed } = setup(
      listing({ [`${ROLE}|us-east-1`]: failing }),
      existing,
      [],
      undefined,
      rdsCa,
    );
    await loop.run();
    expect(writer.writes).toEqual([]);
    expect(changed).toEqual([`${NS}/${warehouseName}`]);
    expect(issues.get(`${NS}/${warehouseName}`)).toMatchObject({
      type: 'CredentialsReady',
      status: 'False',
      reason: 'AssumeRoleDenied',
      message: expect.stringMatching(/not allowed to assume .*\. Fix: name the caller as Principal/),
    });
    expect(issues.get(`${NS}/${ordersName}`)).toBeUndefined();
    expect(sink.events).toEqual([
      {
        type: 'Warning',
        reason: 'AssumeRoleDenied',
        message: expect.stringMatching(/^AWS discovery: .*Fix:/),
      },
    ]);

    // The role is fixed: the condition clears, and the Database is re-queued to show it.
    changed.length = 0;
    await setup(listing(), existing, changed, issues, rdsCa).loop.run();
    expect(issues.get(`${NS}/${warehouseName}`)).toBeUndefined();
    expect(changed).toEqual([`${NS}/${warehouseName}`]);
  });

  it('reports a failed Describe call on the Pod only: it says nothing about credentials', async () => {
    const existing = desiredDatabases([orders, sessions, warehouse], NS).map(stored);
    const describeDenied = new AwsError(
      AwsReason.AccessDenied,
      'AWS denied rds:DescribeDBInstances',
      'add it',
    );
    const failing: DiscoveryResult = {
      ...ok(),
      failed: new Set(['rds/us-east-1/123456789012', 'elasticache/us-east-1/123456789012']),
      errors: [describeDenied],
    };
    const { loop, writer, sink, changed } = setup(listing({ 'own|us-east-1': failing }), existing);
    await loop.run();
    expect(writer.writes).toEqual([]); // kept, not deleted
    expect(changed).toEqual([]);
    expect(sink.events.map((e) => e.reason)).toEqual(['AWSAccessDenied']);
  });

  it('tries every write, reports the failures on the Pod and the round as incomplete', async () => {
    const { loop, writer, sink } = setup(listing());
    const apply = writer.apply.bind(writer);
    writer.apply = async (obj) => {
      if (obj.metadata.name === ordersName) throw new Error('databases.drawbridge.dev is forbidden');
      return apply(obj);
    };
    expect((await loop.run()).complete).toBe(false);
    expect(writer.writes).toHaveLength(2);
    expect(sink.events).toEqual([
      {
        type: 'Warning',
        reason: 'DiscoveryApplyFailed',
        message: `AWS discovery could not write 1 Database(s) in ${NS}: databases.drawbridge.dev is forbidden`,
      },
    ]);
  });
});

describe('ControllerEvents', () => {
  it('puts Events on the Pod, not again within the renotify window', () => {
    const sink = new RecordingEvents();
    const events = new ControllerEvents(sink, POD, log, 1000);
    events.warn('AssumeRoleDenied', 'm', 0);
    events.warn('AssumeRoleDenied', 'm', 999);
    events.warn('AssumeRoleDenied', 'other', 999);
    events.warn('AssumeRoleDenied', 'm', 1000);
    expect(sink.events.map((e) => e.message)).toEqual(['m', 'other', 'm']);
  });

  it('logs only outside a pod', () => {
    const sink = new RecordingEvents();
    new ControllerEvents(sink, undefined, log).warn('NoCredentials', 'm');
    expect(sink.events).toEqual([]);
  });

  it('finds the Pod through the downward API environment', () => {
    expect(podFromEnv({ POD_NAME: 'p', POD_NAMESPACE: 'ns', POD_UID: 'u' })).toEqual({
      name: 'p',
      namespace: 'ns',
      uid: 'u',
    });
    expect(podFromEnv({ POD_NAMESPACE: 'ns' })).toBeUndefined();
  });
});
