/**
 * The CRDs in crds/ on a real API server: what it accepts, what it refuses and with which message, what
 * it stores (defaults, custom traits, int-or-string quantities), and that its verdict is zod's verdict for
 * every case, so the CEL rules and the zod refinements (the agent's check) stay in step.
 */
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccessRole, DatabaseUser } from '../../../src/api/access.js';
import { Database } from '../../../src/api/database.js';
import { agentManifests } from '../../../src/operator/database/manifests.js';
import { KubectlError, type ControlPlane, startControlPlane } from '../../k8s/controlplane.js';

const NS = 'crd-test';
let plane: ControlPlane;

beforeAll(async () => {
  plane = await startControlPlane();
  await plane.kubectl(['apply', '-f', path.resolve('crds')]);
  await plane.kubectl(['wait', '--for=condition=Established', 'crd', '--all', '--timeout=60s']);
  await plane.kubectl(['create', 'namespace', NS]);
});

afterAll(async () => {
  await plane?.stop();
});

const pg = { protocol: 'postgres', uri: 'postgres://db.internal:5432', auth: { type: 'passthrough' } };
const rds = { type: 'rds', region: 'eu-west-1', identifiers: { instance: 'orders' } };

function database(name: string, spec: object): object {
  return { apiVersion: 'drawbridge.dev/v1alpha1', kind: 'Database', metadata: { name, namespace: NS }, spec };
}

function user(name: string, spec: object): object {
  return {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'DatabaseUser',
    metadata: { name, namespace: NS },
    spec,
  };
}

/** kubectl apply; resolves to '' when the API server accepts, else to its error text. */
async function apply(obj: object): Promise<string> {
  try {
    await plane.kubectl(['apply', '-f', '-'], { input: stringify(obj) });
    return '';
  } catch (err) {
    if (err instanceof KubectlError) return err.stderr;
    throw err;
  }
}

async function get(kind: string, name: string): Promise<{ spec: Record<string, unknown> }> {
  return JSON.parse(await plane.kubectl(['get', kind, name, '-n', NS, '-o', 'json'])) as {
    spec: Record<string, unknown>;
  };
}

const alice = [{ kind: 'User', name: 'alice' }];

function role(name: string, allow: object): object {
  return {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'AccessRole',
    metadata: { name, namespace: NS },
    spec: { allow },
  };
}

const many = <T>(n: number, item: (i: number) => T): T[] => Array.from({ length: n }, (_, i) => item(i));
const SCHEMAS = { Database, DatabaseUser, AccessRole } as const;

describe('the API server refuses what zod refuses, with a message naming the fix', () => {
  it.each<[string, object, RegExp]>([
    [
      'protocol redis with a postgres:// URI',
      database('scheme', { ...pg, protocol: 'redis' }),
      /spec\.uri: .*scheme of spec\.uri does not match protocol "redis": use redis:\/\/ or rediss:\/\//,
    ],
    [
      'password auth without a Secret',
      database('nosecret', { ...pg, auth: { type: 'password' } }),
      /spec\.auth: .*auth type "password" needs auth\.secretRef naming a Secret/,
    ],
    [
      'auth left out (password by default) without a Secret',
      database('noauth', { protocol: 'postgres', uri: 'postgres://db:5432' }),
      /auth type "password" needs auth\.secretRef/,
    ],
    [
      'rds-iam without spec.aws',
      database('noaws', { ...pg, auth: { type: 'rds-iam' } }),
      /auth type "rds-iam" signs in with AWS: set spec\.aws/,
    ],
    [
      'rds-iam against an ElastiCache aws.type',
      database('wrongaws', { ...pg, auth: { type: 'rds-iam' }, aws: { ...rds, type: 'elasticache' } }),
      /spec\.aws\.type: .*auth type "rds-iam" does not work with aws\.type "elasticache": use aws\.type rds or aurora/,
    ],
    [
      'an ElastiCache database speaking postgres',
      database('wrongproto', { ...pg, aws: { ...rds, type: 'elasticache' } }),
      /spec\.protocol: .*aws\.type "elasticache" is a redis database: set protocol to match/,
    ],
    [
      'a Redis path that is not a DB number',
      database('redispath', {
        protocol: 'redis',
        uri: 'redis://cache:6379/cache',
        auth: { type: 'passthrough' },
      }),
      /the path of a Redis URI is the DB number/,
    ],
    [
      'a DB number in cluster mode',
      database('clusterdb', {
        protocol: 'redis',
        uri: 'rediss://cache:6379/3?mode=cluster',
        auth: { type: 'passthrough' },
      }),
      /Redis Cluster has only DB 0/,
    ],
    [
      'a Redis Cluster command timeout below 100ms',
      database('timeout', {
        protocol: 'redis',
        uri: 'rediss://cache:6379?mode=cluster',
        auth: { type: 'passthrough' },
        redis: { commandTimeout: '10ms' },
      }),
      /spec\.redis\.commandTimeout: .*must be at least 100ms/,
    ],
    [
      'a Redis Cluster seed node without a port',
      database('seeds', {
        protocol: 'redis',
        uri: 'rediss://cache-0:6379?mode=cluster',
        auth: { type: 'passthrough' },
        redis: { seedNodes: ['cache-1:6379', 'cache-2'] },
      }),
      /spec\.redis\.seedNodes\[1\]: .*should match/,
    ],
    [
      'seed nodes for a standalone Redis',
      database('standaloneseeds', {
        protocol: 'redis',
        uri: 'rediss://cache-0:6379/2',
        auth: { type: 'passthrough' },
        redis: { seedNodes: ['cache-1:6379'] },
      }),
      /spec\.redis\.seedNodes: .*seed nodes are for Redis Cluster: add \?mode=cluster to spec\.uri/,
    ],
    [
      'a loadBalancerClass on a ClusterIP Service',
      database('lbclass', { ...pg, agent: { loadBalancerClass: 'service.k8s.aws/nlb' } }),
      /spec\.agent\.loadBalancerClass: .*loadBalancerClass needs serviceType: LoadBalancer/,
    ],
    [
      'a quantity that is not one',
      database('badcpu', { ...pg, agent: { resources: { limits: { cpu: 'lots' } } } }),
      /spec\.agent\.resources\.limits\.cpu/,
    ],
    [
      'a ServiceAccount subject without a namespace',
      user('sa', { subjects: [{ kind: 'ServiceAccount', name: 'app' }], roles: ['r'] }),
      /spec\.subjects\[0\]\.namespace: .*a ServiceAccount subject needs a namespace/,
    ],
    [
      'a User subject with a namespace',
      user('userns', { subjects: [{ kind: 'User', name: 'bob', namespace: NS }], roles: ['r'] }),
      /namespace is for ServiceAccount subjects only/,
    ],
    // The controller matches every CSR against its namespace's roles: a tenant's oversized role would
    // slow it for every namespace, so the API server refuses one.
    [
      'a role naming 10,000 database users',
      role('huge', { databaseUsers: many(10_000, (i) => `user_${i}`) }),
      /spec\.allow\.databaseUsers: Too many: 10000: must have at most 64 items/,
    ],
    [
      'a role with a 200 kB database name',
      role('longname', { databaseNames: ['n'.repeat(200_000)] }),
      /spec\.allow\.databaseNames\[0\]: Too long: may not be (longer|more) than 128/,
    ],
    [
      'a deny rule with 1,000 Redis commands',
      { ...role('cmds', {}), spec: { deny: { redisCommands: many(1000, (i) => `cmd${i}`) } } },
      /spec\.deny\.redisCommands: Too many: 1000: must have at most 512 items/,
    ],
    [
      'a role matching 100 label keys',
      role('labels', { databaseLabels: Object.fromEntries(many(100, (i) => `k${i}`).map((k) => [k, '*'])) }),
      /spec\.allow\.databaseLabels: Too many: 100: must have at most 16 items/,
    ],
    [
      'a DatabaseUser with 1,000 subjects',
      user('crowd', { subjects: many(1000, (i) => ({ kind: 'User', name: `u${i}` })), roles: ['r'] }),
      /spec\.subjects: Too many: 1000: must have at most 256 items/,
    ],
    [
      'a DatabaseUser trait of 1,000 values',
      user('traits', { subjects: alice, roles: ['r'], traits: { dbUsers: many(1000, (i) => `u${i}`) } }),
      /spec\.traits\.dbUsers: Too many: 1000: must have at most 64 items/,
    ],
  ])('%s', async (_name, obj, message) => {
    expect(await apply(obj)).toMatch(message);
    const schema = SCHEMAS[(obj as { kind: keyof typeof SCHEMAS }).kind];
    expect(schema.safeParse(obj).success, 'zod accepts what the API server refused').toBe(false);
  });

  it('an unknown field is refused rather than dropped', async () => {
    expect(await apply(database('typo', { ...pg, replicas: 2 }))).toMatch(/unknown field "spec\.replicas"/);
  });
});

describe('the API server keeps what zod accepts', () => {
  it('custom traits next to dbUsers', async () => {
    const obj = user('alice', {
      subjects: alice,
      roles: ['readers'],
      traits: { dbUsers: ['alice_ro'], team: ['payments'] },
    });
    expect(await apply(obj)).toBe('');
    expect((await get('databaseuser', 'alice')).spec.traits).toEqual({
      dbUsers: ['alice_ro'],
      team: ['payments'],
    });
    expect(DatabaseUser.safeParse(obj).success).toBe(true);
  });

  it('quantities as numbers or strings, and the defaults', async () => {
    const resources = { requests: { cpu: 1, memory: '256Mi' }, limits: { cpu: '1500m' } };
    const obj = database('orders', {
      ...pg,
      aws: rds,
      auth: { type: 'rds-iam' },
      agent: { resources, serviceType: 'LoadBalancer', loadBalancerClass: 'service.k8s.aws/nlb' },
    });
    expect(await apply(obj)).toBe('');
    const spec = (await get('database', 'orders')).spec;
    expect(spec.agent).toMatchObject({ replicas: 1, resources });
    expect(spec.tls).toEqual({ mode: 'verify-full' });
    expect(Database.safeParse(obj).success).toBe(true);
  });

  it('a ServiceAccount subject with its namespace, and a Redis DB number', async () => {
    const sa = user('app', {
      subjects: [{ kind: 'ServiceAccount', name: 'app', namespace: NS }],
      roles: ['r'],
    });
    const cache = database('cache', {
      protocol: 'redis',
      uri: 'redis://cache:6379/3',
      auth: { type: 'passthrough' },
    });
    expect(await apply(sa)).toBe('');
    expect(await apply(cache)).toBe('');
    expect(DatabaseUser.safeParse(sa).success && Database.safeParse(cache).success).toBe(true);
  });
});

describe('agent pod settings', () => {
  it('every setting lands on objects the API server accepts (server-side dry run)', async () => {
    const agent = {
      serviceType: 'LoadBalancer',
      loadBalancerClass: 'service.k8s.aws/nlb',
      serviceAnnotations: { 'service.beta.kubernetes.io/aws-load-balancer-scheme': 'internal' },
      imagePullSecrets: [{ name: 'regcred' }],
      nodeSelector: { 'kubernetes.io/os': 'linux' },
      tolerations: [{ key: 'dedicated', operator: 'Equal', value: 'db', effect: 'NoSchedule' }],
      affinity: {
        podAntiAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [
            {
              weight: 100,
              podAffinityTerm: {
                topologyKey: 'kubernetes.io/hostname',
                labelSelector: { matchLabels: { 'app.kubernetes.io/name': 'drawbridge-agent' } },
              },
            },
          ],
        },
      },
      topologySpreadConstraints: [{ maxSkew: 1, topologyKey: 'topology.kubernetes.io/zone' }],
      priorityClassName: 'system-cluster-critical',
      podLabels: { team: 'payments' },
      podAnnotations: { 'example.com/owner': 'payments' },
      resources: { requests: { cpu: 1, memory: '128Mi' }, limits: { memory: '256Mi' } },
    };
    const obj = database('podded', { ...pg, agent });
    expect(await apply(obj)).toBe('');
    const stored = JSON.parse(await plane.kubectl(['get', 'database', 'podded', '-n', NS, '-o', 'json']));
    const db = {
      ...Database.parse(stored),
      metadata: { ...stored.metadata, namespace: NS, uid: stored.metadata.uid },
    };
    const objects = agentManifests(db, { image: 'drawbridge:test', command: ['drawbridge'] }, 'digest');
    const sent = objects.filter((o) => o.kind === 'Deployment' || o.kind === 'Service');
    const out = await plane.kubectl(['apply', '--server-side', '--dry-run=server', '-o', 'json', '-f', '-'], {
      input: sent.map((o) => stringify(o)).join('---\n'),
    });
    type Item = { kind: string; metadata: { name: string }; spec: { template?: { spec: object } } };
    const items = (JSON.parse(out) as { items: Item[] }).items;
    const deployment = items.find((o) => o.kind === 'Deployment')!;
    expect(deployment.spec.template!.spec).toMatchObject({
      affinity: agent.affinity,
      priorityClassName: 'system-cluster-critical',
      containers: [{ resources: { requests: { cpu: '1', memory: '128Mi' } } }],
    });
    const service = items.find((o) => o.kind === 'Service' && o.metadata.name === 'drawbridge-podded')!;
    expect(service.spec).toMatchObject({ type: 'LoadBalancer', loadBalancerClass: 'service.k8s.aws/nlb' });
  });
});

describe('what kubectl shows', () => {
  it('explain has descriptions', async () => {
    const text = await plane.kubectl(['explain', 'databases.drawbridge.dev.spec.auth']);
    expect(text).toContain('How the agent authenticates to the backend.');
    expect(text).toMatch(/secretRef.*\n.*Secret with the backend credentials/);
  });

  it('the short names and the drawbridge category reach all three kinds', async () => {
    expect(await plane.kubectl(['get', 'drawdb', '-n', NS, '-o', 'name'])).toContain(
      'database.drawbridge.dev/orders',
    );
    const all = await plane.kubectl(['get', 'drawbridge', '-n', NS, '-o', 'name']);
    expect(all).toContain('database.drawbridge.dev/orders');
    expect(all).toContain('databaseuser.drawbridge.dev/alice');
  });

  it('conditions merge by type: two field managers each keep theirs', async () => {
    const status = (type: string) => ({
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'orders', namespace: NS },
      status: {
        conditions: [
          {
            type,
            status: 'True',
            reason: 'Tested',
            message: 'ok',
            lastTransitionTime: '2026-01-01T00:00:00Z',
            observedGeneration: 1,
          },
        ],
      },
    });
    for (const [manager, type] of [
      ['a', 'Ready'],
      ['b', 'BackendReachable'],
    ]) {
      await plane.kubectl(
        ['apply', '--server-side', `--field-manager=${manager}`, '--subresource=status', '-f', '-'],
        {
          input: stringify(status(type!)),
        },
      );
    }
    const db = JSON.parse(await plane.kubectl(['get', 'database', 'orders', '-n', NS, '-o', 'json'])) as {
      status: { conditions: { type: string; observedGeneration: number }[] };
    };
    expect(db.status.conditions.map((c) => c.type).sort()).toEqual(['BackendReachable', 'Ready']);
    expect(db.status.conditions[0]!.observedGeneration).toBe(1);
  });
});
