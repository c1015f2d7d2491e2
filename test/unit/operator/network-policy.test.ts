// The NetworkPolicy beside each agent (Helm networkPolicy.enabled): the listener from the platform's
// clients and the agent's own replicas, metrics from the monitoring peers, and gone when turned off.
import { beforeAll, describe, expect, it } from 'vitest';
import { parseControllerConfig } from '../../../src/api/controller-config.js';
import { createLogger } from '../../../src/log.js';
import { type AgentSettings, agentManifests } from '../../../src/operator/database/manifests.js';
import {
  DatabaseReconciler,
  OWNED_KINDS,
  type OwnedKind,
} from '../../../src/operator/database/reconciler.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { type KeyPairPem, createCA } from '../../../src/pki/ca.js';
import { FakeCache, RecordingEvents, RecordingWriter, database, storedDatabase } from './fakes.js';

const MONITORING = [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }];
const CLIENTS = [{ namespaceSelector: { matchLabels: { team: 'a' } } }, { ipBlock: { cidr: '10.0.0.0/8' } }];
const settings = (networkPolicy?: AgentSettings['networkPolicy']): AgentSettings => ({
  image: 'img:1',
  command: ['drawbridge'],
  ...(networkPolicy ? { networkPolicy } : {}),
});
const policyOf = (objs: KubeObject[]) => objs.find((o) => o.kind === 'NetworkPolicy');
type Spec = { podSelector: object; policyTypes: string[]; ingress: { ports: object[]; from?: object[] }[] };

let ca: KeyPairPem;
beforeAll(async () => {
  ca = await createCA({ commonName: 'test' });
});

describe('agent NetworkPolicy', () => {
  it('is made only when enabled', () => {
    expect(policyOf(agentManifests(storedDatabase('passthrough'), settings(), 'd'))).toBeUndefined();
  });

  it('lets the clients and the replicas reach the listener, and the monitoring peers the metrics', () => {
    const db = storedDatabase('passthrough');
    const objs = agentManifests(db, settings({ clients: CLIENTS, metricsFrom: MONITORING }), 'd');
    const policy = policyOf(objs)!;
    expect(policy.metadata).toMatchObject({ name: 'drawbridge-orders', namespace: 'shop' });
    const pods = {
      matchLabels: {
        'app.kubernetes.io/name': 'drawbridge-agent',
        'app.kubernetes.io/instance': 'drawbridge-orders',
      },
    };
    expect(policy.spec).toEqual({
      podSelector: pods,
      policyTypes: ['Ingress'],
      ingress: [
        { ports: [{ protocol: 'TCP', port: 5432 }], from: [...CLIENTS, { podSelector: pods }] },
        { ports: [{ protocol: 'TCP', port: 9090 }], from: MONITORING },
      ],
    });
    // It selects the agent's pods, on the ports their container declares.
    const deployment = objs.find((o) => o.kind === 'Deployment')!.spec as {
      template: {
        metadata: { labels: Record<string, string> };
        spec: { containers: { ports: { containerPort: number }[] }[] };
      };
    };
    expect(deployment.template.metadata.labels).toMatchObject(pods.matchLabels);
    expect(deployment.template.spec.containers[0]!.ports.map((p) => p.containerPort)).toEqual([5432, 9090]);
  });

  it('without clients opens the listener to anyone, never the metrics port', () => {
    const redis = storedDatabase('elasticache-iam');
    const spec = policyOf(agentManifests(redis, settings({ clients: [], metricsFrom: MONITORING }), 'd'))!
      .spec as Spec;
    expect(spec.ingress).toEqual([
      { ports: [{ protocol: 'TCP', port: 6379 }] },
      { ports: [{ protocol: 'TCP', port: 9090 }], from: MONITORING },
    ]);
  });

  it('is removed by the reconciler once turned off', async () => {
    const owned = Object.fromEntries(OWNED_KINDS.map((k) => [k, new FakeCache()])) as Record<
      OwnedKind,
      FakeCache
    >;
    const on = settings({ clients: [], metricsFrom: MONITORING });
    owned.NetworkPolicy.put(policyOf(agentManifests(storedDatabase('passthrough'), on, 'd'))!);
    const run = async (agent: AgentSettings) => {
      const writer = new RecordingWriter();
      await new DatabaseReconciler({
        databases: new FakeCache([database()]),
        owned,
        writer,
        events: new RecordingEvents(),
        health: { request: () => undefined, result: () => undefined, forget: () => undefined },
        ca: () => ca,
        agent,
        healthIntervalMs: 30_000,
        log: createLogger('test', 'silent'),
      }).reconcile('shop/orders');
      return writer.ops();
    };
    expect(await run(on)).not.toContain('delete NetworkPolicy');
    expect(await run(settings())).toContain('delete NetworkPolicy');
  });

  it('is read from controller.yaml, which refuses a peer that names nothing', () => {
    const text = (peer: string) =>
      `agents: {networkPolicy: {clients: [${peer}], metricsFrom: [{namespaceSelector: {matchLabels: {a: b}}}]}}`;
    expect(
      parseControllerConfig(text('{ipBlock: {cidr: 10.0.0.0/8}}'), 'c.yaml').agents?.networkPolicy,
    ).toEqual({
      clients: [{ ipBlock: { cidr: '10.0.0.0/8' } }],
      metricsFrom: [{ namespaceSelector: { matchLabels: { a: 'b' } } }],
    });
    expect(() => parseControllerConfig(text('{}'), 'c.yaml')).toThrow(
      /set podSelector, namespaceSelector or ipBlock/,
    );
    expect(() =>
      parseControllerConfig('agents: {networkPolicy: {clients: [], metricsFrom: []}}', 'c.yaml'),
    ).toThrow(/metricsFrom/);
  });
});
