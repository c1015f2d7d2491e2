// AWS discovery: matchers → FoundDatabase → Database objects, and the create/update/delete plan
// against what exists. The controller calls runDiscovery periodically and applies plan(); a scope
// (type/region/account) that failed to list keeps its existing Databases instead of deleting them.
import type { AwsType, Database } from '../../api/database.js';
import type { Logger } from '../../log.js';
import type { AwsClients } from '../clients.js';
import type { AwsIdentity } from '../credentials.js';
import { type AwsError, classifyAwsError } from '../errors.js';
import type { AwsMatcher } from '../../api/controller-config.js';
import { tagsMatch } from '../matchers.js';
import { findReplicationGroups, findServerlessCaches } from './elasticache.js';
import { type CaSecretRef, type FoundDatabase, desiredDatabases, plan } from './found.js';
import { enableIamAuth, findAuroraClusters, findRdsInstances } from './rds.js';
import { findRedshiftClusters, findRedshiftWorkgroups } from './redshift.js';
import { Scope } from './scope.js';

export {
  desiredDatabases,
  needsRdsCa,
  plan,
  type CaSecretRef,
  type DiscoveryPlan,
  type FoundDatabase,
} from './found.js';

type Finder = (clients: AwsClients, scope: Scope) => Promise<FoundDatabase[]>;

const FINDERS: Record<AwsType, Finder> = {
  rds: (c, s) => findRdsInstances(c.rds(s.identity), s),
  aurora: (c, s) => findAuroraClusters(c.rds(s.identity), s),
  redshift: (c, s) => findRedshiftClusters(c.redshift(s.identity), s),
  'redshift-serverless': (c, s) => findRedshiftWorkgroups(c.redshiftServerless(s.identity), s),
  elasticache: (c, s) => findReplicationGroups(c.elasticache(s.identity), s),
  'elasticache-serverless': (c, s) => findServerlessCaches(c.elasticache(s.identity), s),
};

export interface DiscoveryOptions {
  namespace?: string;
  /** Switch IAM database authentication on for RDS/Aurora databases that lack it. */
  enableIamAuth?: boolean;
  /** The Amazon RDS CA bundle's Secret, for RDS/Aurora spec.tls.caSecretRef. */
  rdsCa?: CaSecretRef;
  /** The Databases that exist: a name two found databases ask for stays with its holder. */
  existing?: Database[];
  log?: Logger;
}

export interface DiscoveryResult {
  databases: Database[];
  found: FoundDatabase[];
  /** Scopes (`type/region/account`, or `*\/region/*` when even the account was unknown) that failed. */
  failed: Set<string>;
  errors: AwsError[];
}

export async function runDiscovery(
  matchers: AwsMatcher[],
  clients: AwsClients,
  opts: DiscoveryOptions = {},
): Promise<DiscoveryResult> {
  const found: FoundDatabase[] = [];
  const failed = new Set<string>();
  const errors: AwsError[] = [];
  for (const m of matchers) {
    for (const region of m.regions) {
      const identity: AwsIdentity = {
        region,
        ...(m.assumeRoleArn ? { assumeRoleArn: m.assumeRoleArn } : {}),
        ...(m.externalId ? { externalId: m.externalId } : {}),
      };
      let scope: Scope;
      try {
        scope = new Scope(identity, await clients.account(identity));
      } catch (err) {
        errors.push(
          classifyAwsError(err, {
            action: `discovery in ${region}`,
            ...(m.assumeRoleArn ? { roleArn: m.assumeRoleArn } : {}),
          }),
        );
        for (const t of m.types) failed.add(`${t}/${region}/*`);
        continue;
      }
      for (const type of m.types) {
        try {
          const matched = (await FINDERS[type](clients, scope)).filter((f) => tagsMatch(m.tags, f.tags));
          if (opts.enableIamAuth && (type === 'rds' || type === 'aurora')) {
            const changed = await enableIamAuth(clients.rds(identity), matched);
            if (changed.length)
              opts.log?.info({ region, databases: changed }, 'switched on IAM database authentication');
          }
          found.push(...matched);
        } catch (err) {
          const e = classifyAwsError(err, { action: `discover ${type} in ${region}` });
          errors.push(e);
          failed.add(scope.key(type));
          opts.log?.warn(
            { err: e, type, region },
            'AWS discovery failed for this scope; keeping its Databases',
          );
        }
      }
    }
  }
  const databases = desiredDatabases(found, opts.namespace, opts.rdsCa, {
    ...(opts.existing ? { existing: opts.existing } : {}),
    onConflict: (name, claimants) =>
      opts.log?.warn({ name, claimants }, 'AWS discovery: several databases ask for one Database name'),
  });
  return { databases, found, failed, errors };
}

/** plan()'s `keep`: protects Databases whose scope failed to list this round. */
export function keepFailedScopes(failed: Set<string>): (db: Database) => boolean {
  return (db) => {
    const aws = db.spec.aws;
    if (!aws) return false;
    return (
      failed.has(`${aws.type}/${aws.region}/${aws.accountId ?? ''}`) ||
      failed.has(`${aws.type}/${aws.region}/*`)
    );
  };
}

/** Discovery and its plan in one call, for the controller's periodic loop. */
export async function discoverAndPlan(
  matchers: AwsMatcher[],
  clients: AwsClients,
  existing: Database[],
  opts: DiscoveryOptions = {},
) {
  const result = await runDiscovery(matchers, clients, { ...opts, existing });
  return { ...result, plan: plan(existing, result.databases, keepFailedScopes(result.failed)) };
}
