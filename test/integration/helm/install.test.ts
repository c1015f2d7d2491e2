/**
 * The Helm chart installed into a real API server: its CRDs and controller objects, and with
 * `kubectl auth can-i --as` (SubjectAccessReviews) that the controller's ServiceAccount may do its job
 * and nothing beyond it, and what people get.
 */
import * as k8s from '@kubernetes/client-node';
import { beforeAll, describe, expect, it } from 'vitest';
import { CHART, helmFixture } from './helm.js';

const NS = 'drawbridge';
const SA = `system:serviceaccount:${NS}:drawbridge`;
const fx = helmFixture(NS);
const { helm } = fx;
let admin: k8s.AuthorizationV1Api;

beforeAll(() => {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(fx.plane.kubeconfigPath);
  admin = kc.makeApiClient(k8s.AuthorizationV1Api);
});

interface Access {
  verb: string;
  /** `group:resource[/subresource]`, the core group empty: `:secrets`, `apps:deployments`. */
  on: string;
  namespace?: string;
  name?: string;
}

/**
 * The API server's own RBAC decision (a SubjectAccessReview, what `kubectl auth can-i --as` sends),
 * spelled out fully so subresources and resource names are unambiguous.
 */
async function allowed(user: string, groups: string[], a: Access): Promise<boolean> {
  const [group, rest] = a.on.split(':') as [string, string];
  const [resource, subresource] = rest.split('/');
  const review = await admin.createSubjectAccessReview({
    body: {
      spec: {
        user,
        groups,
        resourceAttributes: {
          verb: a.verb,
          group,
          resource,
          subresource,
          namespace: a.namespace,
          name: a.name,
        },
      },
    },
  });
  return review.status?.allowed === true;
}

const controllerGroups = ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'];

describe('helm install into the test cluster', () => {
  beforeAll(async () => {
    // No kubelet runs here, so --wait would wait forever for pods: install and inspect the objects.
    await helm(['install', 'drawbridge', CHART, '-n', NS, '--set', 'users.groups={devs}']);
  });

  it('creates the CRDs and the controller objects', async () => {
    for (const crd of ['databases', 'accessroles', 'databaseusers']) {
      await fx.plane.kubectl([
        'wait',
        '--for=condition=Established',
        `crd/${crd}.drawbridge.dev`,
        '--timeout=60s',
      ]);
    }
    const names = await fx.plane.kubectl([
      'get',
      'deploy,sa,cm,pdb,role,rolebinding',
      '-n',
      NS,
      '-o',
      'name',
    ]);
    for (const obj of [
      'deployment.apps/drawbridge-controller',
      'serviceaccount/drawbridge',
      'configmap/drawbridge-controller',
      'poddisruptionbudget.policy/drawbridge-controller',
      'role.rbac.authorization.k8s.io/drawbridge-controller',
    ]) {
      expect(names).toContain(obj);
    }
  });

  it("accepts the e2e scenario's access rules under the installed CRDs", async () => {
    await fx.plane.kubectl(['create', 'namespace', 'shop']);
    const out = await fx.plane.kubectl([
      'apply',
      '--dry-run=server',
      '-n',
      'shop',
      '-f',
      'test/e2e/access.yaml',
    ]);
    expect(out).toMatch(/accessrole.drawbridge.dev\/orders-app created \(server dry run\)/);
  });

  // What the controller does (src/operator) — every one must be allowed.
  it.each<Access>([
    { verb: 'watch', on: 'drawbridge.dev:databases' },
    { verb: 'list', on: 'drawbridge.dev:accessroles' },
    { verb: 'list', on: 'drawbridge.dev:databaseusers' },
    { verb: 'patch', on: 'drawbridge.dev:databases/status', namespace: 'shop' },
    { verb: 'patch', on: 'drawbridge.dev:accessroles/status', namespace: 'shop' },
    { verb: 'patch', on: 'drawbridge.dev:databaseusers/status', namespace: 'shop' },
    { verb: 'update', on: 'drawbridge.dev:databases/finalizers', namespace: 'shop' },
    { verb: 'patch', on: 'drawbridge.dev:databases', namespace: 'shop' },
    { verb: 'create', on: 'apps:deployments', namespace: 'shop' },
    { verb: 'watch', on: ':pods' },
    { verb: 'delete', on: ':services', namespace: 'shop' },
    { verb: 'patch', on: ':serviceaccounts', namespace: 'shop' },
    { verb: 'create', on: 'policy:poddisruptionbudgets', namespace: 'shop' },
    { verb: 'watch', on: 'networking.k8s.io:networkpolicies' },
    { verb: 'delete', on: 'networking.k8s.io:networkpolicies', namespace: 'shop' },
    { verb: 'create', on: 'rbac.authorization.k8s.io:roles', namespace: 'shop' },
    { verb: 'create', on: 'rbac.authorization.k8s.io:rolebindings', namespace: 'shop' },
    { verb: 'get', on: ':secrets', namespace: 'shop' },
    { verb: 'create', on: ':events', namespace: 'shop' },
    { verb: 'watch', on: 'certificates.k8s.io:certificatesigningrequests' },
    { verb: 'update', on: 'certificates.k8s.io:certificatesigningrequests/approval', name: 'db-x' },
    { verb: 'update', on: 'certificates.k8s.io:certificatesigningrequests/status', name: 'db-x' },
    { verb: 'approve', on: 'certificates.k8s.io:signers', name: 'drawbridge.dev/database-client' },
    { verb: 'sign', on: 'certificates.k8s.io:signers', name: 'drawbridge.dev/database-client' },
    { verb: 'create', on: 'authentication.k8s.io:tokenreviews' },
    { verb: 'update', on: 'coordination.k8s.io:leases', namespace: NS, name: 'drawbridge-controller' },
    { verb: 'create', on: 'coordination.k8s.io:leases', namespace: NS },
    { verb: 'patch', on: 'rbac.authorization.k8s.io:clusterroles', name: 'drawbridge-agent-tokenreview' },
    {
      verb: 'watch',
      on: 'rbac.authorization.k8s.io:clusterrolebindings',
      name: 'drawbridge-agent-tokenreview',
    },
    {
      verb: 'delete',
      on: 'rbac.authorization.k8s.io:clusterrolebindings',
      name: 'drawbridge-agent-tokenreview',
    },
    { verb: 'patch', on: ':configmaps', namespace: NS, name: 'drawbridge-ca' },
  ])('lets the controller $verb $on $namespace $name', async (access) => {
    expect(await allowed(SA, controllerGroups, access)).toBe(true);
  });

  // Beyond its job — every one must be refused.
  it.each<Access>([
    { verb: 'approve', on: 'certificates.k8s.io:signers', name: 'kubernetes.io/kube-apiserver-client' },
    { verb: 'sign', on: 'certificates.k8s.io:signers', name: 'kubernetes.io/kubelet-serving' },
    { verb: 'create', on: 'drawbridge.dev:databases', namespace: 'shop' },
    { verb: 'delete', on: 'drawbridge.dev:accessroles', namespace: 'shop' },
    { verb: 'update', on: 'drawbridge.dev:accessroles', namespace: 'shop' },
    { verb: 'patch', on: 'rbac.authorization.k8s.io:clusterroles', name: 'admin' },
    { verb: 'patch', on: 'rbac.authorization.k8s.io:clusterrolebindings', name: 'cluster-admin' },
    { verb: 'list', on: 'rbac.authorization.k8s.io:clusterrolebindings' },
    { verb: 'escalate', on: 'rbac.authorization.k8s.io:roles', namespace: 'shop' },
    { verb: 'bind', on: 'rbac.authorization.k8s.io:clusterroles', name: 'cluster-admin' },
    { verb: 'create', on: ':pods', namespace: 'shop' },
    { verb: 'delete', on: ':pods', namespace: 'shop' },
    { verb: 'get', on: ':pods/log', namespace: 'shop' },
    { verb: 'create', on: ':pods/exec', namespace: 'shop' },
    { verb: 'delete', on: ':namespaces', name: 'shop' },
    { verb: 'update', on: 'coordination.k8s.io:leases', namespace: 'kube-system', name: 'kube-scheduler' },
    { verb: 'update', on: 'coordination.k8s.io:leases', namespace: NS, name: 'someone-else' },
    { verb: 'patch', on: ':configmaps', namespace: NS, name: 'kube-root-ca.crt' },
  ])('refuses the controller $verb $on $namespace $name', async (access) => {
    expect(await allowed(SA, controllerGroups, access)).toBe(false);
  });

  it('lets people bound by users.groups log in, and everyone read the CA certificate only', async () => {
    const dev = (a: Access) => allowed('alice', ['devs', 'system:authenticated'], a);
    const other = (a: Access) => allowed('bob', ['system:authenticated'], a);
    const csr = 'certificates.k8s.io:certificatesigningrequests';
    expect(await dev({ verb: 'create', on: csr })).toBe(true);
    expect(await dev({ verb: 'get', on: csr, name: 'db-shop-orders-x7k2p' })).toBe(true);
    // Not everyone's CSRs: who asks for which database, with their groups.
    expect(await dev({ verb: 'list', on: csr })).toBe(false);
    expect(await dev({ verb: 'watch', on: csr })).toBe(false);
    expect(await dev({ verb: 'list', on: 'drawbridge.dev:databases', namespace: 'shop' })).toBe(true);
    expect(await dev({ verb: 'create', on: ':pods/portforward', namespace: 'shop', name: 'x' })).toBe(false);
    expect(await other({ verb: 'create', on: csr })).toBe(false);
    expect(await other({ verb: 'get', on: ':configmaps', namespace: NS, name: 'drawbridge-ca' })).toBe(true);
    expect(
      await other({ verb: 'get', on: ':configmaps', namespace: NS, name: 'drawbridge-controller' }),
    ).toBe(false);
  });
});
