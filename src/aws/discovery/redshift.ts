// Redshift provisioned clusters and Redshift Serverless workgroups.
import { type RedshiftClient, paginateDescribeClusters } from '@aws-sdk/client-redshift';
import {
  ListTagsForResourceCommand,
  type RedshiftServerlessClient,
  paginateListWorkgroups,
} from '@aws-sdk/client-redshift-serverless';
import { Identifier } from '../clients.js';
import type { FoundDatabase } from './found.js';
import type { Scope } from './scope.js';

export async function findRedshiftClusters(redshift: RedshiftClient, scope: Scope): Promise<FoundDatabase[]> {
  const out: FoundDatabase[] = [];
  for await (const page of paginateDescribeClusters({ client: redshift }, {})) {
    for (const c of page.Clusters ?? []) {
      if (!c.Endpoint?.Address) continue;
      out.push({
        ...scope.base('redshift'),
        name: c.ClusterIdentifier!,
        endpointType: 'primary',
        protocol: 'postgres',
        host: c.Endpoint.Address,
        port: c.Endpoint.Port ?? 5439,
        tls: true,
        engine: 'redshift',
        engineVersion: c.ClusterVersion,
        vpcId: c.VpcId,
        tags: Object.fromEntries((c.Tags ?? []).filter((t) => t.Key).map((t) => [t.Key!, t.Value ?? ''])),
        identifiers: { [Identifier.cluster]: c.ClusterIdentifier! },
        auth: 'redshift',
      });
    }
  }
  return out;
}

export async function findRedshiftWorkgroups(
  client: RedshiftServerlessClient,
  scope: Scope,
): Promise<FoundDatabase[]> {
  const out: FoundDatabase[] = [];
  for await (const page of paginateListWorkgroups({ client }, {})) {
    for (const wg of page.workgroups ?? []) {
      if (!wg.endpoint?.address || !wg.workgroupArn) continue;
      const tags = await client.send(new ListTagsForResourceCommand({ resourceArn: wg.workgroupArn }));
      out.push({
        ...scope.base('redshift-serverless'),
        name: wg.workgroupName!,
        endpointType: 'workgroup',
        protocol: 'postgres',
        host: wg.endpoint.address,
        port: wg.endpoint.port ?? 5439,
        tls: true,
        engine: 'redshift-serverless',
        vpcId: wg.endpoint.vpcEndpoints?.[0]?.vpcId || undefined,
        tags: Object.fromEntries((tags.tags ?? []).map((t) => [t.key!, t.value ?? ''])),
        identifiers: { [Identifier.workgroup]: wg.workgroupName!, workgroupArn: wg.workgroupArn },
        auth: 'redshift-serverless',
      });
    }
  }
  return out;
}
