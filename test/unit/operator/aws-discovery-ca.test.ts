// The Amazon RDS CA bundle for discovered databases: RDS and Aurora get spec.tls.caSecretRef (their
// certificates chain to the Amazon RDS CAs, not to public roots), Redshift and ElastiCache keep the
// system roots, and without a configured bundle the RDS/Aurora Databases say what to set.
import { describe, expect, it } from 'vitest';
import { AWS_TYPES, type AwsType } from '../../../src/api/database.js';
import { desiredDatabases } from '../../../src/aws/discovery/found.js';
import type { AwsMatcher } from '../../../src/api/controller-config.js';
import { createLogger } from '../../../src/log.js';
import { DiscoveryLoop } from '../../../src/operator/aws/discovery-loop.js';
import { CredentialIssues } from '../../../src/operator/aws/issues.js';
import { ControllerEvents } from '../../../src/operator/aws/report.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { ACCOUNT, found } from '../aws/fixtures.js';
import { FakeCache, RecordingEvents, RecordingWriter } from './fakes.js';

const NS = 'aws-dbs';
const RDS_CA = { name: 'rds-ca-bundle', key: 'ca.crt' };
const all = AWS_TYPES.map((t) => found(t, `db-${t}`));
const nameOf = (t: AwsType) => `db-${t}-${t}-us-east-1-${ACCOUNT}`;

describe('discovered Databases and the Amazon RDS CA bundle', () => {
  it('RDS and Aurora verify against the bundle Secret; Redshift and ElastiCache use the system roots', () => {
    const tls = Object.fromEntries(
      desiredDatabases(all, NS, RDS_CA).map((d) => [d.spec.aws!.type, d.spec.tls]),
    );
    expect(tls).toEqual({
      rds: { mode: 'verify-full', caSecretRef: RDS_CA },
      aurora: { mode: 'verify-full', caSecretRef: RDS_CA },
      redshift: { mode: 'verify-full' },
      'redshift-serverless': { mode: 'verify-full' },
      elasticache: { mode: 'verify-full' },
      'elasticache-serverless': { mode: 'verify-full' },
    });
    for (const db of desiredDatabases(all, NS)) expect(db.spec.tls).toEqual({ mode: 'verify-full' });
  });

  function loop(rdsCa?: typeof RDS_CA, existing: KubeObject[] = []) {
    const issues = new CredentialIssues(() => undefined);
    const writer = new RecordingWriter();
    const log = createLogger('test', 'silent');
    const matcher: AwsMatcher = { types: [...AWS_TYPES], regions: ['us-east-1'], tags: { '*': '*' } };
    const l = new DiscoveryLoop({
      matchers: [matcher],
      namespace: NS,
      databases: new FakeCache(existing),
      writer,
      issues,
      events: new ControllerEvents(new RecordingEvents(), undefined, log),
      discover: async () => ({ databases: [], found: all, failed: new Set(), errors: [] }),
      log,
      ...(rdsCa ? { rdsCa } : {}),
    });
    return { l, issues, writer };
  }

  it('without a bundle: RDS/Aurora report RDSCABundleMissing with the download and the Helm value', async () => {
    const { l, issues } = loop();
    await l.run();
    for (const t of ['rds', 'aurora'] as const) {
      expect(issues.get(`${NS}/${nameOf(t)}`)).toEqual({
        type: 'CredentialsReady',
        status: 'False',
        reason: 'RDSCABundleMissing',
        message: expect.stringMatching(
          /Amazon RDS CAs.*Fix: download https:\/\/truststore\.pki\.rds\.amazonaws\.com\/global\/global-bundle\.pem.*kubectl -n aws-dbs create secret generic rds-ca-bundle --from-file=ca\.crt=global-bundle\.pem.*aws\.rdsCaBundle\.secretName=rds-ca-bundle/,
        ),
      });
    }
    for (const t of AWS_TYPES.filter((t) => t !== 'rds' && t !== 'aurora')) {
      expect(issues.get(`${NS}/${nameOf(t)}`)).toBeUndefined();
    }
  });

  it('without a bundle: a same-named Database someone else made is not flagged', async () => {
    const handMade: KubeObject = {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: nameOf('rds'), namespace: NS },
      spec: { protocol: 'postgres', uri: 'postgres://elsewhere:5432', auth: { type: 'rds-iam' } },
    };
    const { l, issues } = loop(undefined, [handMade]);
    await l.run();
    expect(issues.get(`${NS}/${nameOf('rds')}`)).toBeUndefined();
    expect(issues.get(`${NS}/${nameOf('aurora')}`)?.reason).toBe('RDSCABundleMissing');
  });

  it('with a bundle: no condition, and the Databases written carry spec.tls.caSecretRef', async () => {
    const { l, issues, writer } = loop(RDS_CA);
    await l.run();
    for (const t of AWS_TYPES) expect(issues.get(`${NS}/${nameOf(t)}`)).toBeUndefined();
    const applied = writer.writes.flatMap((w) => (w.op === 'apply' ? [w.obj] : []));
    const rds = applied.find((o) => o.metadata.name === nameOf('rds'))!;
    expect((rds.spec as { tls: object }).tls).toEqual({ mode: 'verify-full', caSecretRef: RDS_CA });
  });
});
