/**
 * The chart's networkPolicy.* against a real API server: rendered only when asked, the controller's
 * policy selecting its pods on the port they serve, the agents' settings written to controller.yaml as
 * the controller reads them, and both the chart's and an agent's policy accepted by a server-side dry run.
 */
import { describe, expect, it } from 'vitest';
import { parseControllerConfig } from '../../../src/api/controller-config.js';
import { Database } from '../../../src/api/database.js';
import { type StoredDatabase, agentManifests } from '../../../src/operator/database/manifests.js';
import { CHART, type Doc, helmFixture } from './helm.js';

const NS = 'drawbridge';
const fx = helmFixture(NS);
const { helm, template } = fx;

describe('charts/drawbridge networkPolicy', () => {
  it("renders NetworkPolicies only when asked: the controller's metrics port, the agents' from controller.yaml", async () => {
    expect((await template()).map((d) => d.kind)).not.toContain('NetworkPolicy');
    const set = [
      'networkPolicy.enabled=true',
      'networkPolicy.agentClients[0].namespaceSelector.matchLabels.team=a',
      'networkPolicy.agentClients[1].ipBlock.cidr=10.0.0.0/8',
    ];
    const docs = await template(...set);
    const monitoring = [
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ];
    const policy = docs.find((d) => d.kind === 'NetworkPolicy') as Doc & { spec: Record<string, unknown> };
    const deploy = docs.find((d) => d.kind === 'Deployment') as Doc & {
      spec: {
        template: {
          metadata: { labels: Record<string, string> };
          spec: { containers: { ports: { name: string; containerPort: number }[] }[] };
        };
      };
    };
    const selector = (policy.spec.podSelector as { matchLabels: Record<string, string> }).matchLabels;
    expect(deploy.spec.template.metadata.labels).toMatchObject(selector);
    const health = deploy.spec.template.spec.containers[0]!.ports.find((p) => p.name === 'health')!;
    expect(policy.spec).toEqual({
      podSelector: { matchLabels: selector },
      policyTypes: ['Ingress'],
      ingress: [{ ports: [{ protocol: 'TCP', port: health.containerPort }], from: monitoring }],
    });

    // The agents' policies: controller.yaml as the controller reads it, made into each agent's.
    const cm = docs.find((d) => d.kind === 'ConfigMap') as Doc & { data: Record<string, string> };
    const networkPolicy = parseControllerConfig(cm.data['controller.yaml']!, 'controller.yaml').agents
      ?.networkPolicy;
    expect(networkPolicy).toEqual({
      clients: [{ namespaceSelector: { matchLabels: { team: 'a' } } }, { ipBlock: { cidr: '10.0.0.0/8' } }],
      metricsFrom: monitoring,
    });
    const db = Database.parse({
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'orders', namespace: 'np', uid: 'u-1' },
      spec: { protocol: 'postgres', uri: 'postgres://db:5432', auth: { type: 'passthrough' } },
    }) as StoredDatabase;
    const agent = agentManifests(
      db,
      { image: 'drawbridge:test', command: ['drawbridge'], networkPolicy },
      'd',
    );
    const agentPolicy = agent.find((o) => o.kind === 'NetworkPolicy')!;

    // The API server accepts the chart's and the agent's policy as they are.
    await fx.plane.kubectl(['create', 'namespace', 'np']);
    const out = await helm(['template', 'drawbridge', CHART, '-n', NS, ...set.flatMap((v) => ['--set', v])]);
    const dryRun = (input: string, ns: string) =>
      fx.plane.kubectl(['apply', '--dry-run=server', '-n', ns, '-f', '-'], { input });
    expect(await dryRun(out, NS)).toMatch(
      /networkpolicy.networking.k8s.io\/drawbridge-controller created \(server dry run\)/,
    );
    expect(await dryRun(JSON.stringify(agentPolicy), 'np')).toMatch(
      /networkpolicy.networking.k8s.io\/drawbridge-orders created \(server dry run\)/,
    );
  });
});
