// Database objects as discovery would write them, for policy and plan tests.
import { createHash } from 'node:crypto';
import type { AwsType, Database } from '../../../src/api/database.js';
import { desiredDatabases, type FoundDatabase } from '../../../src/aws/discovery/found.js';

export const ACCOUNT = '123456789012';

/** Like AWS's DbiResourceId / DbClusterResourceId: a prefix and 26 upper-case characters. */
export function resourceId(prefix: string, name: string): string {
  return `${prefix}-${createHash('sha256').update(name).digest('hex').slice(0, 26).toUpperCase()}`;
}

export function found(type: AwsType, name: string, over: Partial<FoundDatabase> = {}): FoundDatabase {
  const postgres = type === 'rds' || type === 'aurora' || type.startsWith('redshift');
  const ids: Record<AwsType, Record<string, string>> = {
    rds: { instance: name, resourceId: resourceId('db', name) },
    aurora: { cluster: name, resourceId: resourceId('cluster', name), endpoint: 'primary' },
    redshift: { cluster: name },
    'redshift-serverless': { workgroup: name },
    elasticache: { replicationGroup: name },
    'elasticache-serverless': { serverlessCache: name },
  };
  return {
    type,
    region: 'us-east-1',
    account: ACCOUNT,
    name,
    endpointType: 'primary',
    protocol: postgres ? 'postgres' : 'redis',
    host: `${name}.example.us-east-1.amazonaws.com`,
    port: postgres ? 5432 : 6379,
    tls: true,
    engine: postgres ? 'postgres' : 'redis',
    engineVersion: postgres ? '15.4' : '7.1',
    tags: { env: 'dev' },
    identifiers: ids[type],
    auth:
      type === 'rds' || type === 'aurora'
        ? 'rds-iam'
        : type.startsWith('elasticache')
          ? 'elasticache-iam'
          : type === 'redshift'
            ? 'redshift'
            : 'redshift-serverless',
    ...over,
  };
}

export function databases(type: AwsType, n: number, region = 'us-east-1'): Database[] {
  return desiredDatabases(Array.from({ length: n }, (_, i) => found(type, `${type}-db-${i}`, { region })));
}
