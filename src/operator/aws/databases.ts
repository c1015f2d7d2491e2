// Databases as the AWS parts of the controller read them from the informer cache.
import { Database } from '../../api/database.js';
import type { KubeObject } from '../../kube/types.js';
import type { ObjectCache } from '../../kube/writer.js';
import { awsNamespaceAllowed } from '../database/agent-identity.js';

export type AwsDatabase = Database & { spec: { aws: NonNullable<Database['spec']['aws']> } };

export const databaseKey = (db: { metadata: { name: string; namespace?: string } }) =>
  `${db.metadata.namespace ?? ''}/${db.metadata.name}`;

/** Valid, live Databases with spec.aws, in every namespace (or one). */
export function awsDatabases(cache: ObjectCache, namespace?: string): AwsDatabase[] {
  const out: AwsDatabase[] = [];
  for (const raw of cache.list(namespace)) {
    if (raw.metadata.deletionTimestamp) continue;
    const parsed = Database.safeParse(raw);
    if (parsed.success && parsed.data.spec.aws) out.push(parsed.data as AwsDatabase);
  }
  return out.sort((a, b) => databaseKey(a).localeCompare(databaseKey(b)));
}

/** The AWS Databases the controller lends its AWS identities to: those of the namespaces allowed. */
export function lentAwsDatabases(cache: ObjectCache, allowed: readonly string[] | undefined): AwsDatabase[] {
  return awsDatabases(cache).filter((d) => awsNamespaceAllowed(allowed, d.metadata.namespace ?? ''));
}

/**
 * Every Database in a namespace, for discovery's plan: parsed (defaults applied, as discovery's own
 * are) when valid, as stored otherwise — an invalid object still owns its name and must not be
 * overwritten.
 */
export function existingDatabases(cache: ObjectCache, namespace: string): Database[] {
  return cache.list(namespace).map((raw: KubeObject) => {
    const parsed = Database.safeParse(raw);
    return parsed.success ? parsed.data : (raw as unknown as Database);
  });
}
