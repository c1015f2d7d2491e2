// RDS PostgreSQL instances and Aurora PostgreSQL clusters (primary, reader and custom endpoints).
import {
  type DBCluster,
  type DBInstance,
  ModifyDBClusterCommand,
  ModifyDBInstanceCommand,
  type RDSClient,
  paginateDescribeDBClusters,
  paginateDescribeDBInstances,
} from '@aws-sdk/client-rds';
import { Identifier } from '../clients.js';
import type { FoundDatabase } from './found.js';
import type { Scope } from './scope.js';

const tagsOf = (list: { Key?: string; Value?: string }[] | undefined) =>
  Object.fromEntries((list ?? []).filter((t) => t.Key).map((t) => [t.Key!, t.Value ?? '']));

export async function findRdsInstances(rds: RDSClient, scope: Scope): Promise<FoundDatabase[]> {
  const out: FoundDatabase[] = [];
  for await (const page of paginateDescribeDBInstances({ client: rds }, {})) {
    for (const db of page.DBInstances ?? []) {
      // Aurora members are reached through their cluster's endpoints.
      if (db.DBClusterIdentifier || db.Engine !== 'postgres' || !db.Endpoint?.Address) continue;
      out.push(instance(db, scope));
    }
  }
  return out;
}

function instance(db: DBInstance, scope: Scope): FoundDatabase {
  return {
    ...scope.base('rds'),
    name: db.DBInstanceIdentifier!,
    endpointType: 'instance',
    protocol: 'postgres',
    host: db.Endpoint!.Address!,
    port: db.Endpoint!.Port ?? 5432,
    tls: true,
    engine: db.Engine!,
    engineVersion: db.EngineVersion,
    vpcId: db.DBSubnetGroup?.VpcId,
    tags: tagsOf(db.TagList),
    identifiers: {
      [Identifier.instance]: db.DBInstanceIdentifier!,
      [Identifier.resourceId]: db.DbiResourceId ?? '',
    },
    auth: 'rds-iam',
    iamAuthEnabled: db.IAMDatabaseAuthenticationEnabled ?? false,
  };
}

export async function findAuroraClusters(rds: RDSClient, scope: Scope): Promise<FoundDatabase[]> {
  const out: FoundDatabase[] = [];
  for await (const page of paginateDescribeDBClusters({ client: rds }, {})) {
    for (const c of page.DBClusters ?? []) {
      if (c.Engine !== 'aurora-postgresql' || !c.Endpoint) continue;
      out.push(...clusterEndpoints(c, scope));
    }
  }
  return out;
}

function clusterEndpoints(c: DBCluster, scope: Scope): FoundDatabase[] {
  const id = c.DBClusterIdentifier!;
  const base = {
    ...scope.base('aurora'),
    name: id,
    protocol: 'postgres' as const,
    port: c.Port ?? 5432,
    tls: true,
    engine: c.Engine!,
    engineVersion: c.EngineVersion,
    tags: tagsOf(c.TagList),
    auth: 'rds-iam' as const,
    iamAuthEnabled: c.IAMDatabaseAuthenticationEnabled ?? false,
  };
  const ids = (endpoint: string) => ({
    [Identifier.cluster]: id,
    [Identifier.resourceId]: c.DbClusterResourceId ?? '',
    [Identifier.endpoint]: endpoint,
  });
  const out: FoundDatabase[] = [
    { ...base, endpointType: 'primary', host: c.Endpoint!, identifiers: ids('primary') },
  ];
  // A reader endpoint only serves traffic when the cluster has a reader instance.
  const hasReader = (c.DBClusterMembers ?? []).some((m) => !m.IsClusterWriter);
  if (c.ReaderEndpoint && hasReader) {
    out.push({ ...base, endpointType: 'reader', host: c.ReaderEndpoint, identifiers: ids('reader') });
  }
  for (const host of c.CustomEndpoints ?? []) {
    const endpointName = host.split('.')[0]!;
    out.push({ ...base, endpointType: 'custom', endpointName, host, identifiers: ids(endpointName) });
  }
  return out;
}

/** Switches IAM database authentication on (applied immediately) for found databases lacking it. */
export async function enableIamAuth(rds: RDSClient, found: FoundDatabase[]): Promise<string[]> {
  const done = new Set<string>();
  for (const f of found) {
    if (f.iamAuthEnabled !== false || done.has(f.name)) continue;
    if (f.type === 'aurora') {
      await rds.send(
        new ModifyDBClusterCommand({
          DBClusterIdentifier: f.name,
          EnableIAMDatabaseAuthentication: true,
          ApplyImmediately: true,
        }),
      );
    } else {
      await rds.send(
        new ModifyDBInstanceCommand({
          DBInstanceIdentifier: f.name,
          EnableIAMDatabaseAuthentication: true,
          ApplyImmediately: true,
        }),
      );
    }
    done.add(f.name);
  }
  return [...done];
}
