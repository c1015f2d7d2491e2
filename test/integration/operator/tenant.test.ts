/**
 * A tenant with every right in its own namespace (team-b) and none elsewhere, against the real
 * controller and API server: what it writes there must not stop the controller serving team-a, nor
 * keep its own agent's audit log from being shipped.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ANNOTATION_DATABASE,
  ANNOTATION_DB_USER,
  SIGNER_NAME,
  agentName,
} from '../../../src/operator/names.js';
import { createCsr } from '../../../src/pki/ca.js';
import { type OperatorEnv, eventsOf, eventually, startOperatorEnv } from './fixture.js';

const V = 'drawbridge.dev/v1alpha1';
const A = 'team-a';
const B = 'team-b';
let env: OperatorEnv;
let tenant: string;

type Csr = { status?: { certificate?: string; conditions?: { type: string; reason: string }[] } };

const database = (namespace: string, name: string, labels: Record<string, string>) => ({
  apiVersion: V,
  kind: 'Database',
  metadata: { name, namespace, labels },
  spec: { protocol: 'postgres', uri: 'postgres://127.0.0.1:1', auth: { type: 'passthrough' } },
});
const role = (namespace: string, name: string, allow: object) => ({
  apiVersion: V,
  kind: 'AccessRole',
  metadata: { name, namespace },
  spec: { allow },
});
const person = (namespace: string, name: string, roles: string[]) => ({
  apiVersion: V,
  kind: 'DatabaseUser',
  metadata: { name, namespace },
  spec: { subjects: [{ kind: 'User', name }], roles },
});

/** `kubectl db login` as the holder of `kubeconfig`; resolves to the CSR once decided. */
async function login(kubeconfig: string, name: string, cn: string, database: string, dbUser?: string) {
  const { csrPem } = await createCsr({ commonName: cn });
  const csr = {
    apiVersion: 'certificates.k8s.io/v1',
    kind: 'CertificateSigningRequest',
    metadata: {
      name,
      annotations: { [ANNOTATION_DATABASE]: database, ...(dbUser ? { [ANNOTATION_DB_USER]: dbUser } : {}) },
    },
    spec: {
      request: Buffer.from(csrPem).toString('base64'),
      signerName: SIGNER_NAME,
      usages: ['client auth', 'digital signature'],
    },
  };
  await env.plane.kubectl(['create', '-f', '-'], { input: JSON.stringify(csr), kubeconfig });
  return eventually(`CSR ${name} decided`, async () => {
    const c = await env.get<Csr>('csr', name);
    return c?.status?.certificate || c?.status?.conditions?.some((x) => x.type === 'Denied') ? c : undefined;
  });
}

beforeAll(async () => {
  env = await startOperatorEnv({ controllers: 1, namespaces: [A, B], nodeAgent: false });
  tenant = await env.plane.makeUserKubeconfig('mallory');
  await env.apply([
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'owner', namespace: B },
      rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'mallory-owns', namespace: B },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'owner' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'mallory' }],
    },
    database(A, 'orders', { env: 'prod' }),
    role(A, 'readers', { databaseLabels: { env: 'prod' }, databaseUsers: ['reader'] }),
    person(A, 'alice', ['readers']),
  ]);
}, 180_000);

afterAll(async () => {
  await env?.stop();
});

describe('a tenant cannot stop the controller for other namespaces', () => {
  it('with patterns that backtrack for hours against labels and a CSR database user it chose', async () => {
    const bait = 'a'.repeat(40) + 'c';
    await env.apply(
      [
        database(B, 'bait', { x: bait }),
        role(B, 'redos', { databaseLabels: { x: '^(a+)+b$' }, databaseUsers: ['^(a+)+b$'] }),
        role(B, 'stars', { databaseLabels: { x: 'a*'.repeat(30) + 'b' }, databaseUsers: ['*'] }),
        person(B, 'mallory', ['redos', 'stars']),
      ],
      tenant,
    );
    const own = await login(tenant, 'mallory-bait', 'mallory', `${B}/bait`, 'a'.repeat(5000) + 'c');
    expect(own.status?.conditions?.map((c) => c.reason)).toEqual(['AccessDenied']);

    const alice = await env.plane.makeUserKubeconfig('alice');
    const signed = await login(alice, 'alice-orders', 'alice', `${A}/orders`);
    expect(signed.status?.certificate).toBeTruthy();
    const orders = await eventually('team-a/orders status', async () => {
      const d = await env.get<{ status?: { access?: { users: number } } }>('database', 'orders', A);
      return d?.status?.access?.users === 1 ? d : undefined;
    });
    expect(orders.status?.access).toEqual({ users: 1, roles: 1 });
  });
});

describe("a tenant cannot stop its agent's audit log from being shipped", () => {
  type Deployment = { spec: { template: { metadata: TemplateMeta } } };
  type TemplateMeta = { labels: Record<string, string>; annotations: Record<string, string> };
  const deployment = () => env.get<Deployment>('deployment', agentName('audited'), B);

  it("the agent runs without log collectors' skip keys, the Database says why, and edits are undone", async () => {
    const db = database(B, 'audited', {});
    const agent = {
      podAnnotations: { 'fluentbit.io/exclude': 'true', 'example.com/team': 'b' },
      podLabels: { 'vector.dev/exclude': 'true', cost: 'b' },
    };
    await env.apply([{ ...db, spec: { ...db.spec, agent } }], tenant);

    const applied = await eventually('agent Deployment', deployment);
    const meta = applied.spec.template.metadata;
    expect(meta.annotations['example.com/team']).toBe('b');
    expect(meta.annotations['fluentbit.io/exclude']).toBeUndefined();
    expect(meta.labels.cost).toBe('b');
    expect(meta.labels['vector.dev/exclude']).toBeUndefined();

    const condition = await eventually('PodMetadataAllowed=False', async () => {
      const d = await env.get<{
        status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
      }>('database', 'audited', B);
      return d?.status?.conditions?.find((c) => c.type === 'PodMetadataAllowed' && c.status === 'False');
    });
    expect(condition.reason).toBe('PodMetadataForbidden');
    expect(condition.message).toContain('spec.agent.podAnnotations["fluentbit.io/exclude"]');
    expect(condition.message).toContain('agents.forbiddenPodMetadataKeys');
    const warned = await eventually('Warning Event', async () => {
      const out = await eventsOf(env, B, 'involvedObject.name=audited,reason=PodMetadataForbidden');
      const items = (JSON.parse(out) as { items: { type: string; message: string }[] }).items;
      return items.find((e) => e.message.includes('vector.dev/exclude'));
    });
    expect(warned.type).toBe('Warning');

    // The tenant may edit the Deployment in its namespace: the controller removes the key again.
    const edit = { spec: { template: { metadata: { annotations: { 'fluentbit.io/exclude': 'true' } } } } };
    await env.plane.kubectl(
      ['patch', 'deployment', agentName('audited'), '-n', B, '--type=merge', '-p', JSON.stringify(edit)],
      { kubeconfig: tenant },
    );
    await eventually('the edited-in key removed', async () => {
      const d = await deployment();
      return d && d.spec.template.metadata.annotations['fluentbit.io/exclude'] === undefined;
    });
    expect((await deployment())?.spec.template.metadata.annotations['example.com/team']).toBe('b');
  });
});
