// AWS discovery in the controller (leader only): every `discoveryInterval`, list AWS with the matchers
// and make the Database objects in the target namespace match — server-side apply with field manager
// `drawbridge`, label drawbridge.dev/origin=aws. Only objects with that label are ever updated or
// deleted; a name someone else already uses is left alone; a scope (type/region/role) that failed to
// list keeps its Databases, so an AWS outage never empties the cluster.
//
// Where failures go (nothing is lost in a log line only):
// - every AWS failure: a Warning Event on the controller's Pod, reason = the AwsReason, message with
//   the fix (report.ts);
// - a failure of the matcher's identity itself (AssumeRoleDenied, NoCredentials, IMDSHopLimit): also
//   CredentialsReady=False on the Databases that identity reaches in that region, since their agents
//   sign in the same way. Other discovery failures (a Describe call denied, a timeout) say nothing
//   about those Databases' credentials and are reported on the Pod only;
// - RDS/Aurora found while no Secret with the Amazon RDS CA bundle is configured: CredentialsReady=
//   False RDSCABundleMissing on those Databases (their verify-full TLS cannot succeed), naming the
//   Helm value to set.
// A Kubernetes write that fails (RBAC, a conflict) does not stop the others; it is reported on the Pod
// and the round reports itself incomplete, so the caller looks again soon — without the work queue's
// millisecond backoff, which would list AWS over and over.
import type { Database } from '../../api/database.js';
import { ORIGIN_AWS, ORIGIN_LABEL } from '../../aws/discovery/found.js';
import {
  type CaSecretRef,
  type DiscoveryPlan,
  type DiscoveryResult,
  desiredDatabases,
  keepFailedScopes,
  needsRdsCa,
  plan,
} from '../../aws/discovery/index.js';
import { AwsError, AwsReason, awsCondition } from '../../aws/errors.js';
import type { AwsMatcher } from '../../api/controller-config.js';
import { errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { KubeObject } from '../../kube/types.js';
import type { ObjectCache, ObjectWriter } from '../../kube/writer.js';
import { databaseKey, existingDatabases } from './databases.js';
import type { CredentialIssues } from './issues.js';
import type { ControllerEvents } from './report.js';

/** Failures of the identity a matcher's Databases share, rather than of one API call. */
const IDENTITY_REASONS: ReadonlySet<AwsReason> = new Set([
  AwsReason.AssumeRoleDenied,
  AwsReason.NoCredentials,
  AwsReason.IMDSHopLimit,
]);

export interface DiscoveryLoopDeps {
  matchers: AwsMatcher[];
  /** Where discovered Databases live. */
  namespace: string;
  /** The Amazon RDS CA bundle's Secret in `namespace` (Helm aws.rdsCaBundle), for RDS/Aurora TLS. */
  rdsCa?: CaSecretRef;
  databases: ObjectCache;
  writer: ObjectWriter;
  issues: CredentialIssues;
  events: ControllerEvents;
  /** runDiscovery for one single-region matcher (a seam for unit tests). */
  discover: (matcher: AwsMatcher) => Promise<DiscoveryResult>;
  log: Logger;
}

interface Round {
  matcher: AwsMatcher;
  result: DiscoveryResult;
}

export class DiscoveryLoop {
  /** One matcher per region: failures are then attributable to an identity and a region. */
  private readonly units: AwsMatcher[];

  constructor(private readonly deps: DiscoveryLoopDeps) {
    this.units = deps.matchers.flatMap((m) => m.regions.map((region) => ({ ...m, regions: [region] })));
  }

  /** One round: list, apply the plan, report. `complete` is false when a Kubernetes write failed. */
  async run(): Promise<DiscoveryPlan & { complete: boolean }> {
    const { namespace, writer } = this.deps;
    const existing = existingDatabases(this.deps.databases, namespace);
    const rounds: Round[] = [];
    for (const matcher of this.units) rounds.push({ matcher, result: await this.deps.discover(matcher) });

    const failed = new Set(rounds.flatMap((r) => [...r.result.failed]));
    const desired = desiredDatabases(
      rounds.flatMap((r) => r.result.found),
      namespace,
      this.deps.rdsCa,
      {
        existing,
        onConflict: (name, claimants) =>
          this.deps.events.warn(
            'DiscoveryNameConflict',
            `AWS discovery: ${claimants.join(', ')} all ask for Database name ${name} in ${namespace}; ` +
              'it stays with the one that has it (else none), the others fall back to their own names or are left ' +
              'out. Fix: give each a distinct drawbridge.dev/name tag',
          ),
      },
    );
    const changes = plan(existing, desired, keepFailedScopes(failed));
    const writeErrors: string[] = [];
    const attempt = (write: Promise<void>) =>
      write.catch((err: unknown) => void writeErrors.push(errorMessage(err)));
    for (const db of [...changes.create, ...changes.update]) await attempt(writer.apply(manifest(db)));
    for (const db of changes.delete) await attempt(writer.delete('Database', db.metadata.name, namespace));

    this.report(rounds, existing, changes, desired);
    if (writeErrors.length) {
      this.deps.events.warn(
        'DiscoveryApplyFailed',
        `AWS discovery could not write ${writeErrors.length} Database(s) in ${namespace}: ${writeErrors[0]}`,
      );
    }
    return { ...changes, complete: writeErrors.length === 0 };
  }

  private report(rounds: Round[], existing: Database[], changes: DiscoveryPlan, desired: Database[]): void {
    const names = (dbs: Database[]) => dbs.map((d) => d.metadata.name);
    if (changes.create.length + changes.update.length + changes.delete.length) {
      this.deps.log.info(
        {
          namespace: this.deps.namespace,
          created: names(changes.create),
          updated: names(changes.update),
          deleted: names(changes.delete),
        },
        'AWS discovery changed Databases',
      );
    }
    const issues = new Map<string, AwsError>();
    for (const { matcher, result } of rounds) {
      for (const err of result.errors) {
        this.deps.events.warn(err.reason, `AWS discovery: ${awsCondition(err).message}`);
        if (!IDENTITY_REASONS.has(err.reason)) continue;
        for (const db of existing.filter((d) => reachedBy(matcher, d))) issues.set(databaseKey(db), err);
      }
    }
    if (!this.deps.rdsCa) {
      // Only Databases discovery writes: a same-named object someone else made is not ours to flag.
      const ours = new Set(
        [...existing.filter((d) => d.metadata.labels?.[ORIGIN_LABEL] === ORIGIN_AWS), ...changes.create].map(
          (d) => d.metadata.name,
        ),
      );
      for (const db of desired) {
        const key = databaseKey(db);
        if (!ours.has(db.metadata.name) || issues.has(key) || !needsRdsCa(db.spec.aws!.type)) continue;
        if (db.spec.tls.mode === 'verify-full') issues.set(key, rdsCaMissing(this.deps.namespace));
      }
    }
    this.deps.issues.replace('discovery', issues);
  }
}

function rdsCaMissing(namespace: string): AwsError {
  return new AwsError(
    AwsReason.RDSCABundleMissing,
    'RDS and Aurora server certificates chain to the Amazon RDS CAs, which are not default trusted roots, ' +
      'so verify-full TLS fails without the bundle, and the controller has none configured',
    'download https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem, run ' +
      `kubectl -n ${namespace} create secret generic rds-ca-bundle --from-file=ca.crt=global-bundle.pem, ` +
      'and set the Helm value aws.rdsCaBundle.secretName=rds-ca-bundle (controller config aws.rdsCaSecretRef)',
    { code: 'INVALID_CONFIG' },
  );
}

/** A discovered Database of this single-region matcher's identity. */
function reachedBy(matcher: AwsMatcher, db: Database): boolean {
  const aws = db.spec?.aws;
  return (
    db.metadata.labels?.[ORIGIN_LABEL] === ORIGIN_AWS &&
    !!aws &&
    matcher.types.includes(aws.type) &&
    matcher.regions[0] === aws.region &&
    matcher.assumeRoleArn === aws.assumeRoleArn
  );
}

/** What server-side apply sends: the fields discovery owns, nothing the API server assigned. */
function manifest(db: Database): KubeObject {
  const { name, namespace, labels, annotations } = db.metadata;
  return {
    apiVersion: db.apiVersion,
    kind: db.kind,
    metadata: { name, namespace, labels, annotations },
    spec: db.spec,
  };
}
