import { describe, expect, it } from 'vitest';
import { Database, referencedSecrets } from '../../../src/api/database.js';
import { tokenReviewBinding } from '../../../src/operator/agent-access.js';
import { type StoredDatabase, agentArgs, agentManifests } from '../../../src/operator/database/manifests.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { agentEndpoint, agentName, agentPeersName } from '../../../src/operator/names.js';

/** The agent container's args in the Deployment rendered for `db` with the chart-wide pod defaults `pod`. */
function deploymentArgs(db: StoredDatabase, pod?: object): string[] {
  const d = byKind(agentManifests(db, { ...settings, pod }, 'd')).Deployment!;
  return (d.spec as { template: { spec: { containers: { args: string[] }[] } } }).template.spec.containers[0]!
    .args;
}

function stored(spec: object): StoredDatabase {
  const db = Database.parse({
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'Database',
    metadata: { name: 'orders', namespace: 'shop' },
    spec: { protocol: 'postgres', uri: 'postgres://db:5432', auth: { type: 'passthrough' }, ...spec },
  });
  return { ...db, metadata: { ...db.metadata, namespace: 'shop', uid: 'u-1' } };
}

const settings = { image: 'img:1', command: ['drawbridge'] };
const byKind = (objs: KubeObject[]) =>
  Object.fromEntries(objs.map((o) => [o.kind, o])) as Record<string, KubeObject>;

describe('agent manifests', () => {
  it('names objects after the Database in a form every kind accepts', () => {
    expect(agentName('orders')).toBe('drawbridge-orders');
    expect(agentName('orders.eu')).toBe('drawbridge-orders-eu');
    const long = agentName('x'.repeat(80));
    expect(long).toHaveLength(63);
    expect(long).toMatch(/^[a-z]([-a-z0-9]*[a-z0-9])?$/);
    expect(agentName('x'.repeat(80))).not.toBe(agentName(`${'x'.repeat(79)}y`));
    expect(agentEndpoint('shop', 'orders', 'redis')).toBe('drawbridge-orders.shop.svc:6379');
    const peers = agentPeersName('x'.repeat(80));
    expect(peers).toHaveLength(63);
    expect(peers).toMatch(/^drawbridge-x+-[0-9a-f]{8}-peers$/);
    expect(peers).not.toBe(agentPeersName(`${'x'.repeat(79)}y`));
  });

  it('gives PostgreSQL agents a headless peers Service, so a cancel reaches the replica holding the session', () => {
    const objects = agentManifests(stored({}), settings, 'd');
    const peers = objects.find((o) => o.metadata.name === 'drawbridge-orders-peers')!;
    expect(peers).toMatchObject({
      kind: 'Service',
      spec: {
        clusterIP: 'None',
        publishNotReadyAddresses: true,
        selector: { 'app.kubernetes.io/instance': 'drawbridge-orders' },
        ports: [{ port: 5432, targetPort: 'postgres' }],
      },
    });
    expect(agentArgs(stored({}))).toEqual(
      expect.arrayContaining(['--peers', 'drawbridge-orders-peers.shop.svc:5432']),
    );
    const redis = stored({ protocol: 'redis', uri: 'redis://cache:6379' });
    expect(agentManifests(redis, settings, 'd').map((o) => o.metadata.name)).not.toContain(
      'drawbridge-orders-peers',
    );
    expect(agentArgs(redis)).not.toContain('--peers');
  });

  it('passes spec.agent.workers (over the chart default agents.pod.workers) as --workers', () => {
    // Unset: the agent counts the CPUs of its cgroup quota itself.
    expect(deploymentArgs(stored({}))).not.toContain('--workers');
    expect(deploymentArgs(stored({}), { workers: 2 }).join(' ')).toContain('--workers 2');
    expect(deploymentArgs(stored({ agent: { workers: 4 } }), { workers: 2 }).join(' ')).toContain(
      '--workers 4',
    );
    expect(() => stored({ agent: { workers: 0 } })).toThrow();
  });

  it('passes spec.agent.semiSpaceMB (over agents.pod.semiSpaceMB) as --semi-space-mb', () => {
    // Unset: the launcher line's bound.
    expect(deploymentArgs(stored({}))).not.toContain('--semi-space-mb');
    expect(deploymentArgs(stored({}), { semiSpaceMB: 8 }).join(' ')).toContain('--semi-space-mb 8');
    expect(deploymentArgs(stored({ agent: { semiSpaceMB: 16 } }), { semiSpaceMB: 8 }).join(' ')).toContain(
      '--semi-space-mb 16',
    );
    expect(() => stored({ agent: { semiSpaceMB: 0 } })).toThrow();
    expect(() => stored({ agent: { semiSpaceMB: 128 } })).toThrow();
    expect(() => stored({ agent: { semiSpaceMB: '16 --require x' } })).toThrow();
  });

  it('runs `drawbridge agent --database NS/NAME` with the TLS Secret mounted', () => {
    const d = byKind(agentManifests(stored({}), settings, 'digest1')).Deployment!;
    const pod = (d.spec as { template: { metadata: { annotations: object }; spec: Record<string, unknown> } })
      .template;
    expect(agentArgs(stored({})).slice(0, 3)).toEqual(['agent', '--database', 'shop/orders']);
    expect(agentArgs(stored({})).join(' ')).toContain('--termination-log /dev/termination-log');
    expect(agentArgs(stored({}))).not.toContain('--audit-mode');
    const audit = { mode: 'best-effort' as const, stallTimeout: '2m' };
    expect(agentArgs(stored({}), { audit }).join(' ')).toContain(
      '--audit-mode best-effort --audit-stall-timeout 2m',
    );
    expect(pod.metadata.annotations).toEqual({ 'drawbridge.dev/tls-digest': 'digest1' });
    expect(pod.spec).toMatchObject({
      serviceAccountName: 'drawbridge-orders',
      containers: [
        {
          image: 'img:1',
          command: ['drawbridge'],
          volumeMounts: [{ name: 'tls', mountPath: '/etc/drawbridge/tls' }],
          readinessProbe: { httpGet: { path: '/healthz', port: 'metrics' } },
          // Never /healthz: it is 503 while draining.
          livenessProbe: { httpGet: { path: '/livez', port: 'metrics' }, failureThreshold: 6 },
          terminationMessagePath: '/dev/termination-log',
          terminationMessagePolicy: 'FallbackToLogsOnError',
        },
      ],
      volumes: [{ name: 'tls', secret: { secretName: 'drawbridge-orders-tls' } }],
    });
    expect(d.metadata.ownerReferences).toEqual([
      {
        apiVersion: 'drawbridge.dev/v1alpha1',
        kind: 'Database',
        name: 'orders',
        uid: 'u-1',
        controller: true,
        blockOwnerDeletion: true,
      },
    ]);
  });

  it('grants the agent its own Database and only the Secrets it names', () => {
    const spec = {
      tls: { mode: 'verify-full', caSecretRef: { name: 'pg-ca', key: 'ca.crt' } },
      auth: { type: 'password', secretRef: { name: 'pg-passwords' } },
    };
    expect(referencedSecrets(stored(spec))).toEqual(['pg-ca', 'pg-passwords']);
    const rules = byKind(agentManifests(stored(spec), settings, 'd')).Role!.rules as {
      resources: string[];
      resourceNames?: string[];
    }[];
    expect(rules).toMatchObject([
      { resources: ['databases'], resourceNames: ['orders'] },
      { resources: ['accessroles', 'databaseusers'] },
      { resources: ['secrets'], resourceNames: ['pg-ca', 'pg-passwords'] },
    ]);
    const noSecrets = byKind(agentManifests(stored({}), settings, 'd')).Role!.rules as object[];
    expect(noSecrets).toHaveLength(2); // an empty resourceNames would grant every Secret
  });

  it('adds a PodDisruptionBudget only above one replica', () => {
    expect(byKind(agentManifests(stored({}), settings, 'd')).PodDisruptionBudget).toBeUndefined();
    const pdb = byKind(
      agentManifests(stored({ agent: { replicas: 3 } }), settings, 'd'),
    ).PodDisruptionBudget!;
    expect(pdb.spec).toEqual({
      maxUnavailable: 1,
      selector: {
        matchLabels: {
          'app.kubernetes.io/name': 'drawbridge-agent',
          'app.kubernetes.io/instance': 'drawbridge-orders',
        },
      },
    });
  });

  it('binds TokenReview for every agent ServiceAccount except those being deleted, in a stable order', () => {
    const db = (ns: string, name: string, deleting = false): KubeObject => ({
      metadata: { name, namespace: ns, ...(deleting ? { deletionTimestamp: 'now' } : {}) },
    });
    const crb = tokenReviewBinding([db('b', 'x'), db('a', 'y'), db('a', 'gone', true), db('a', 'x')]);
    expect(crb.subjects).toEqual([
      { kind: 'ServiceAccount', name: 'drawbridge-x', namespace: 'a' },
      { kind: 'ServiceAccount', name: 'drawbridge-y', namespace: 'a' },
      { kind: 'ServiceAccount', name: 'drawbridge-x', namespace: 'b' },
    ]);
  });

  it('puts the pod and Service settings on the agent, spec.agent over the chart defaults', () => {
    const defaults = {
      nodeSelector: { pool: 'infra', arch: 'amd64' },
      tolerations: [{ key: 'infra', operator: 'Exists' as const }],
      priorityClassName: 'default-low',
      podLabels: { team: 'platform' },
      imagePullSecrets: [{ name: 'regcred' }],
    };
    const db = stored({
      agent: {
        serviceType: 'LoadBalancer',
        loadBalancerClass: 'service.k8s.aws/nlb',
        serviceAnnotations: { 'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internal' },
        nodeSelector: { pool: 'db' },
        priorityClassName: 'critical',
        podLabels: { 'app.kubernetes.io/instance': 'hijack', cost: 'orders' },
        podAnnotations: { 'drawbridge.dev/tls-digest': 'x', 'example.com/a': 'b' },
        resources: { requests: { cpu: 1, memory: '256Mi' } },
        topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone' }],
      },
    });
    const all = agentManifests(db, { ...settings, pod: defaults }, 'digest1');
    const objs = byKind(all);
    expect(all.find((o) => o.metadata.name === 'drawbridge-orders' && o.kind === 'Service')).toMatchObject({
      metadata: {
        annotations: {
          'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internal',
          'drawbridge.dev/database': 'shop/orders',
        },
      },
      spec: { type: 'LoadBalancer', loadBalancerClass: 'service.k8s.aws/nlb' },
    });
    const template = (objs.Deployment!.spec as { template: KubeObject & { spec: Record<string, unknown> } })
      .template;
    expect(template.metadata.labels).toMatchObject({
      'app.kubernetes.io/instance': 'drawbridge-orders',
      team: 'platform',
      cost: 'orders',
    });
    expect(template.metadata.annotations).toEqual({
      'drawbridge.dev/tls-digest': 'digest1',
      'example.com/a': 'b',
    });
    expect(template.spec).toMatchObject({
      nodeSelector: { pool: 'db', arch: 'amd64' },
      tolerations: defaults.tolerations,
      priorityClassName: 'critical',
      imagePullSecrets: [{ name: 'regcred' }],
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: 'topology.kubernetes.io/zone',
          whenUnsatisfiable: 'ScheduleAnyway',
          labelSelector: { matchLabels: { 'app.kubernetes.io/instance': 'drawbridge-orders' } },
        },
      ],
      containers: [{ resources: { requests: { cpu: '1', memory: '256Mi' } } }],
    });
  });
});
