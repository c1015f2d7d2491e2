// IAM bootstrap and managed-user rotation in the controller, against fake caches and fake AWS seams:
// when AWS is called, what a failure shows on which Databases, and when it clears.
import { describe, expect, it } from 'vitest';
import type { Database } from '../../../src/api/database.js';
import type { AwsIdentity } from '../../../src/aws/credentials.js';
import { desiredDatabases } from '../../../src/aws/discovery/found.js';
import { AwsError, AwsReason } from '../../../src/aws/errors.js';
import type { BootstrapResult, RoleRef } from '../../../src/aws/iam-bootstrap.js';
import type { PolicyInputs } from '../../../src/aws/iam-statements.js';
import type { AwsMatcher } from '../../../src/api/controller-config.js';
import { createLogger } from '../../../src/log.js';
import { IamSync } from '../../../src/operator/aws/iam-sync.js';
import { CredentialIssues } from '../../../src/operator/aws/issues.js';
import { ControllerEvents } from '../../../src/operator/aws/report.js';
import { RotationSync } from '../../../src/operator/aws/rotation-sync.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { databases as awsDbs, found } from '../aws/fixtures.js';
import { FakeCache, RecordingEvents } from './fakes.js';

const log = createLogger('test', 'silent');
const POD = { name: 'drawbridge-controller-0', namespace: 'drawbridge-system' };
const matcher: AwsMatcher = { types: ['rds'], regions: ['us-east-1'], tags: { env: 'prod' } };
const ROLE: RoleRef = { account: '123456789012', name: 'drawbridge' };

const inNs = (ns: string) => (db: Database) =>
  ({ ...db, metadata: { ...db.metadata, namespace: ns } }) as KubeObject;
const handMade: KubeObject = {
  apiVersion: 'drawbridge.dev/v1alpha1',
  kind: 'Database',
  metadata: { name: 'local', namespace: 'shop' },
  spec: { protocol: 'postgres', uri: 'postgres://db:5432', auth: { type: 'passthrough' } },
};

function setup(objects: KubeObject[], mode: 'attach' | 'print' = 'attach', matchers = [matcher]) {
  const cache = new FakeCache(objects);
  const calls: Pick<PolicyInputs, 'databases' | 'matchers'>[] = [];
  let fail: unknown;
  const changed: string[] = [];
  const issues = new CredentialIssues((k) => changed.push(k));
  const sink = new RecordingEvents();
  const sync = new IamSync({
    mode,
    matchers,
    databases: cache,
    issues,
    events: new ControllerEvents(sink, POD, log, 0),
    attach: async (inputs): Promise<BootstrapResult & { role: RoleRef }> => {
      calls.push(inputs);
      if (fail) throw fail;
      return {
        plan: { managed: [], widened: false, size: 321, inline: { Version: '2012-10-17', Statement: [] } },
        changed: calls.length === 1,
        managedArns: [],
        role: ROLE,
      };
    },
    resyncMs: 300_000,
    log,
  });
  return { sync, cache, calls, issues, changed, sink, failWith: (e: unknown) => (fail = e) };
}

describe('IamSync', () => {
  it('attaches for every AWS Database and the matchers, then only when they change or a re-check is due', async () => {
    const dbs = [...awsDbs('rds', 2).map(inNs('a')), ...awsDbs('redshift', 1).map(inNs('b'))];
    const { sync, cache, calls, sink } = setup([...dbs, handMade]);
    expect(await sync.run(0)).toBe(300_000);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.databases.map((d) => d.metadata.name)).toEqual([
      'rds-db-0-rds-us-east-1-123456789012',
      'rds-db-1-rds-us-east-1-123456789012',
      'redshift-db-0-redshift-us-east-1-123456789012',
    ]);
    expect(calls[0]!.matchers).toEqual([matcher]);
    expect(sink.events).toEqual([
      {
        type: 'Normal',
        reason: 'IAMPolicyAttached',
        message: expect.stringMatching(
          /3 AWS Databases on role drawbridge \(inline policy "drawbridge", 321 characters\)/,
        ),
      },
    ]);

    await sync.run(1000);
    expect(calls).toHaveLength(1); // nothing changed: no AWS call
    cache.put(handMade); // status churn on a non-AWS Database: still nothing
    await sync.run(2000);
    expect(calls).toHaveLength(1);
    cache.put(inNs('a')(awsDbs('aurora', 1)[0]!));
    await sync.run(3000);
    expect(calls).toHaveLength(2);
    await sync.run(3000 + 300_000);
    expect(calls).toHaveLength(3); // periodic re-check repairs edits made in IAM
  });

  it('turns a failure into CredentialsReady=False on every AWS Database, retries within a minute, clears on success', async () => {
    const dbs = awsDbs('rds', 2).map(inNs('a'));
    const { sync, calls, issues, changed, sink, failWith } = setup([...dbs, handMade]);
    failWith(
      new AwsError(
        AwsReason.PolicySizeExceeded,
        'the IAM policy Drawbridge needs is 20000 characters',
        'split the databases across IAM roles',
      ),
    );
    expect(await sync.run(0)).toBe(60_000);
    expect(changed.sort()).toEqual(dbs.map((d) => `a/${d.metadata.name}`).sort());
    expect(issues.get(`a/${dbs[0]!.metadata.name}`)).toMatchObject({
      type: 'CredentialsReady',
      status: 'False',
      reason: 'PolicySizeExceeded',
      message:
        'the IAM policy Drawbridge needs is 20000 characters. Fix: split the databases across IAM roles',
    });
    expect(issues.get('shop/local')).toBeUndefined();
    expect(sink.events[0]).toMatchObject({ type: 'Warning', reason: 'PolicySizeExceeded' });

    failWith(undefined);
    await sync.run(30_000);
    expect(calls).toHaveLength(1); // not yet
    changed.length = 0;
    await sync.run(60_000);
    expect(calls).toHaveLength(2);
    expect(issues.get(`a/${dbs[0]!.metadata.name}`)).toBeUndefined();
    expect(changed).toHaveLength(2);
  });

  it('classifies what the SDK throws (IAM denied) with the fix', async () => {
    const { sync, issues, failWith } = setup(awsDbs('rds', 1).map(inNs('a')));
    failWith(
      Object.assign(new Error('User is not authorized to perform iam:PutRolePolicy'), {
        name: 'AccessDenied',
      }),
    );
    await sync.run(0);
    expect(issues.get('a/rds-db-0-rds-us-east-1-123456789012')).toMatchObject({
      reason: 'AWSAccessDenied',
      message: expect.stringMatching(/Fix: .*drawbridge iam print/),
    });
  });

  it('makes no AWS call when there is nothing AWS, and waits for a change', async () => {
    const { sync, calls } = setup([handMade], 'attach', []);
    expect(await sync.run(0)).toBeUndefined();
    expect(calls).toEqual([]);
  });

  it('prints instead of attaching: one Event per change, no AWS call', async () => {
    const { sync, cache, calls, sink } = setup(awsDbs('rds', 1).map(inNs('a')), 'print');
    await sync.run(0);
    await sync.run(1000);
    expect(calls).toEqual([]);
    expect(sink.events).toEqual([
      {
        type: 'Normal',
        reason: 'IAMPolicyNeeded',
        message: expect.stringMatching(/aws.iamBootstrap=attach/),
      },
    ]);
    cache.put(inNs('a')(awsDbs('rds', 2)[1]!));
    await sync.run(2000);
    expect(sink.events).toHaveLength(2);
  });

  it('reports PolicySizeExceeded in print mode too, computed locally, for as long as it lasts', async () => {
    const { sync, issues } = setup(awsDbs('rds', 1000).map(inNs('a')), 'print');
    expect(await sync.run(0)).toBe(60_000);
    expect(issues.get('a/rds-db-7-rds-us-east-1-123456789012')?.reason).toBe('PolicySizeExceeded');
    await sync.run(60_000); // the re-check finds the same
    expect(issues.get('a/rds-db-7-rds-us-east-1-123456789012')?.reason).toBe('PolicySizeExceeded');
  });
});

describe('IamSync across namespaces', () => {
  /** A tenant's Databases with resource IDs this long: a policy no role has room for. */
  const bloated = (count: number, length: number) =>
    awsDbs('rds', count).map((db, i) =>
      inNs('team-b')({
        ...db,
        metadata: { ...db.metadata, name: `bloat-${i}` },
        spec: {
          ...db.spec,
          aws: { ...db.spec.aws!, identifiers: { resourceId: `db-${'X'.repeat(length)}${i}` } },
        },
      }),
    );
  const teamA = awsDbs('rds', 2).map(inNs('team-a'));

  // 7 x 10,000: each resource alone is longer than a managed policy (6,144), which the plan once
  // packed one to a policy and called fitting; AWS would have refused them, failing every namespace.
  it.each([
    ['print', 30, 3_000],
    ['attach', 30, 3_000],
    ['print', 7, 10_000],
    ['attach', 7, 10_000],
  ] as const)(
    '%s, %i Databases with %i-character IDs in one namespace: it is told so; the others are covered',
    async (mode, count, length) => {
      const { sync, calls, issues, sink } = setup([...teamA, ...bloated(count, length)], mode);
      await sync.run(0);
      for (const db of teamA) expect(issues.get(`team-a/${db.metadata.name}`)).toBeUndefined();
      expect(issues.get('team-b/bloat-3')).toMatchObject({
        reason: 'PolicySizeExceeded',
        message: expect.stringMatching(
          new RegExp(
            `^the IAM policy for the ${count} AWS Database\\(s\\) of namespace team-b \\(~\\d+ characters\\) ` +
              "does not fit beside the other namespaces'.*Fix: give this namespace an IAM role of its own",
          ),
        ),
      });
      expect(sink.events.some((e) => e.reason === 'PolicySizeExceeded')).toBe(true);
      if (mode === 'attach')
        expect(calls[0]!.databases.map((d) => d.metadata.namespace)).toEqual(['team-a', 'team-a']);
    },
  );
});

describe('RotationSync', () => {
  const managed = (name: string, region: string, assumeRoleArn?: string) =>
    inNs('a')(
      desiredDatabases([
        found('elasticache', name, {
          region,
          auth: 'elasticache-managed',
          ...(assumeRoleArn ? { assumeRoleArn } : {}),
        }),
      ])[0]!,
    );

  it('runs one rotation loop over the identities of elasticache-managed Databases, restarted when they change', () => {
    const cache = new FakeCache([
      managed('a', 'us-east-1'),
      managed('b', 'us-east-1'),
      inNs('a')(awsDbs('elasticache', 1)[0]!),
    ]);
    const started: AwsIdentity[][] = [];
    let stopped = 0;
    const sync = new RotationSync({
      databases: cache,
      start: (ids) => (started.push(ids), { stop: () => void stopped++ }),
      log,
    });
    sync.run();
    sync.run();
    expect(started).toEqual([[{ region: 'us-east-1' }]]);
    cache.put(managed('c', 'eu-west-1', 'arn:aws:iam::123456789012:role/r'));
    sync.run();
    expect(stopped).toBe(1);
    expect(started[1]).toEqual([
      { region: 'us-east-1' },
      { region: 'eu-west-1', assumeRoleArn: 'arn:aws:iam::123456789012:role/r' },
    ]);
    sync.stop();
    expect(stopped).toBe(2);
  });
});
