// ElastiCache replication groups (cluster mode on: the configuration endpoint; off: primary and
// reader endpoints) and ElastiCache Serverless caches.
import {
  type CacheCluster,
  type ElastiCacheClient,
  ListTagsForResourceCommand,
  type ReplicationGroup,
  paginateDescribeCacheClusters,
  paginateDescribeCacheSubnetGroups,
  paginateDescribeReplicationGroups,
  paginateDescribeServerlessCaches,
} from '@aws-sdk/client-elasticache';
import type { AuthType } from '../../api/database.js';
import { Identifier } from '../clients.js';
import type { FoundDatabase } from './found.js';
import type { Scope } from './scope.js';

async function tagsOf(client: ElastiCacheClient, arn: string): Promise<Record<string, string>> {
  const out = await client.send(new ListTagsForResourceCommand({ ResourceName: arn }));
  return Object.fromEntries((out.TagList ?? []).filter((t) => t.Key).map((t) => [t.Key!, t.Value ?? '']));
}

/** IAM auth needs engine 7 or later; older engines use managed (rotated) passwords. */
function authFor(version: string | undefined): AuthType {
  const major = Number((version ?? '7').split('.')[0]);
  return major >= 7 ? 'elasticache-iam' : 'elasticache-managed';
}

export async function findReplicationGroups(
  client: ElastiCacheClient,
  scope: Scope,
): Promise<FoundDatabase[]> {
  const members = new Map<string, CacheCluster>();
  for await (const page of paginateDescribeCacheClusters({ client }, {})) {
    for (const c of page.CacheClusters ?? []) if (c.CacheClusterId) members.set(c.CacheClusterId, c);
  }
  const vpcs = new Map<string, string>();
  for await (const page of paginateDescribeCacheSubnetGroups({ client }, {})) {
    for (const g of page.CacheSubnetGroups ?? [])
      if (g.CacheSubnetGroupName && g.VpcId) vpcs.set(g.CacheSubnetGroupName, g.VpcId);
  }
  const out: FoundDatabase[] = [];
  for await (const page of paginateDescribeReplicationGroups({ client }, {})) {
    for (const rg of page.ReplicationGroups ?? []) {
      if (rg.Status === 'deleting' || !rg.ARN) continue;
      const member = rg.MemberClusters?.map((id) => members.get(id)).find(Boolean);
      out.push(...groupEndpoints(rg, member, vpcs, await tagsOf(client, rg.ARN), scope));
    }
  }
  return out;
}

function groupEndpoints(
  rg: ReplicationGroup,
  member: CacheCluster | undefined,
  vpcs: Map<string, string>,
  tags: Record<string, string>,
  scope: Scope,
): FoundDatabase[] {
  const engineVersion = member?.EngineVersion;
  const base = {
    ...scope.base('elasticache'),
    name: rg.ReplicationGroupId!,
    protocol: 'redis' as const,
    tls: rg.TransitEncryptionEnabled ?? false,
    engine: rg.Engine ?? member?.Engine ?? 'redis',
    engineVersion,
    vpcId: member?.CacheSubnetGroupName ? vpcs.get(member.CacheSubnetGroupName) : undefined,
    tags,
    identifiers: { [Identifier.replicationGroup]: rg.ReplicationGroupId! },
    auth: authFor(engineVersion),
  };
  if (rg.ClusterEnabled && rg.ConfigurationEndpoint?.Address) {
    const { Address, Port } = rg.ConfigurationEndpoint;
    return [{ ...base, endpointType: 'configuration', cluster: true, host: Address, port: Port ?? 6379 }];
  }
  const group = rg.NodeGroups?.[0];
  const out: FoundDatabase[] = [];
  if (group?.PrimaryEndpoint?.Address) {
    out.push({
      ...base,
      endpointType: 'primary',
      host: group.PrimaryEndpoint.Address,
      port: group.PrimaryEndpoint.Port ?? 6379,
    });
  }
  if (group?.ReaderEndpoint?.Address) {
    out.push({
      ...base,
      endpointType: 'reader',
      host: group.ReaderEndpoint.Address,
      port: group.ReaderEndpoint.Port ?? 6379,
    });
  }
  return out;
}

export async function findServerlessCaches(
  client: ElastiCacheClient,
  scope: Scope,
): Promise<FoundDatabase[]> {
  const out: FoundDatabase[] = [];
  for await (const page of paginateDescribeServerlessCaches({ client }, {})) {
    for (const c of page.ServerlessCaches ?? []) {
      if (c.Status === 'deleting' || !c.Endpoint?.Address || !c.ARN) continue;
      out.push({
        ...scope.base('elasticache-serverless'),
        name: c.ServerlessCacheName!,
        endpointType: 'serverless',
        protocol: 'redis',
        host: c.Endpoint.Address,
        port: c.Endpoint.Port ?? 6379,
        tls: true, // serverless caches always require TLS
        engine: c.Engine ?? 'redis',
        engineVersion: c.FullEngineVersion ?? c.MajorEngineVersion,
        tags: await tagsOf(client, c.ARN),
        identifiers: { [Identifier.serverlessCache]: c.ServerlessCacheName! },
        auth: 'elasticache-iam',
      });
    }
  }
  return out;
}
