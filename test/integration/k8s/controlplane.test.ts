/**
 * Proves test/k8s/controlplane.ts gives a real, usable API server: identities from client
 * certificates reach RBAC and CSR spec.username, ServiceAccount tokens round-trip through
 * TokenRequest/TokenReview with our audience, and kube-controller-manager collects garbage.
 */
import { webcrypto } from 'node:crypto';
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import * as k8s from '@kubernetes/client-node';
import * as x509 from '@peculiar/x509';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubectlError, startControlPlane, type ControlPlane } from '../../k8s/controlplane.js';

const NS = 'controlplane-test';
const AUDIENCE = 'drawbridge.dev';

let plane: ControlPlane;
let admin: k8s.KubeConfig;

function kubeconfig(file: string): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(file);
  return kc;
}

async function eventually(check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

beforeAll(async () => {
  plane = await startControlPlane({ controllerManager: true });
  admin = kubeconfig(plane.kubeconfigPath);
  await admin.makeApiClient(k8s.CoreV1Api).createNamespace({ body: { metadata: { name: NS } } });
});

afterAll(async () => {
  await plane?.stop();
});

describe('test control plane', () => {
  it('reports the version it was built from, not v0.0.0', async () => {
    const info = await admin.makeApiClient(k8s.VersionApi).getCode();
    expect(info.gitVersion).toMatch(/^v1\.\d+\.\d+$/);
    expect(info.major).toBe('1');
    expect(await plane.kubectl(['version', '-o', 'json'])).toContain(`"gitVersion": "${info.gitVersion}"`);
  });

  it('issues ServiceAccount tokens for our audience and reviews them', async () => {
    const core = admin.makeApiClient(k8s.CoreV1Api);
    const authn = admin.makeApiClient(k8s.AuthenticationV1Api);
    await core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'app' } } });
    const tr = await core.createNamespacedServiceAccountToken({
      name: 'app',
      namespace: NS,
      body: { spec: { audiences: [AUDIENCE], expirationSeconds: 600 } },
    });
    const token = tr.status?.token;
    expect(token).toBeTruthy();

    const ok = await authn.createTokenReview({ body: { spec: { token, audiences: [AUDIENCE] } } });
    expect(ok.status?.authenticated).toBe(true);
    expect(ok.status?.user?.username).toBe(`system:serviceaccount:${NS}:app`);
    expect(ok.status?.audiences).toEqual([AUDIENCE]);

    const wrong = await authn.createTokenReview({ body: { spec: { token, audiences: ['someone-else'] } } });
    expect(wrong.status?.authenticated).toBeFalsy();
    expect(wrong.status?.error).toMatch(/audience/i);
  });

  it('fills CSR spec.username from the client certificate of a non-admin user', async () => {
    const rbac = admin.makeApiClient(k8s.RbacAuthorizationV1Api);
    await rbac.createClusterRole({
      body: {
        metadata: { name: 'csr-creator' },
        rules: [
          {
            apiGroups: ['certificates.k8s.io'],
            resources: ['certificatesigningrequests'],
            verbs: ['create', 'get'],
          },
        ],
      },
    });
    await rbac.createClusterRoleBinding({
      body: {
        metadata: { name: 'csr-creator-devs' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'csr-creator' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'devs' }],
      },
    });
    const alice = kubeconfig(await plane.makeUserKubeconfig('alice', ['devs']));

    const keys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ]);
    const req = await x509.Pkcs10CertificateRequestGenerator.create({
      name: 'CN=alice',
      keys,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    });
    const csr = await alice.makeApiClient(k8s.CertificatesV1Api).createCertificateSigningRequest({
      body: {
        metadata: { name: 'alice-orders-pg' },
        spec: {
          signerName: 'drawbridge.dev/database-client',
          request: Buffer.from(req.toString('pem')).toString('base64'),
          usages: ['client auth'],
          expirationSeconds: 3600,
        },
      },
    });
    expect(csr.spec.username).toBe('alice');
    expect(csr.spec.groups).toEqual(expect.arrayContaining(['devs', 'system:authenticated']));
  });

  it('denies what RBAC does not grant, through the client and through kubectl', async () => {
    const path = await plane.makeUserKubeconfig('mallory', ['devs']);
    const mallory = kubeconfig(path).makeApiClient(k8s.CoreV1Api);
    await expect(mallory.listNamespacedSecret({ namespace: NS })).rejects.toMatchObject({ code: 403 });

    const denied = await plane
      .kubectl(['get', 'secrets', '-n', NS], { kubeconfig: path })
      .catch((e: unknown) => e);
    expect(denied).toBeInstanceOf(KubectlError);
    expect((denied as KubectlError).stderr).toMatch(/forbidden.*"mallory"/);
  });

  it('garbage-collects objects whose owner is deleted (kube-controller-manager)', async () => {
    const core = admin.makeApiClient(k8s.CoreV1Api);
    const owner = await core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: 'owner' } },
    });
    await plane.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: 'dependent',
          namespace: NS,
          ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid: owner.metadata?.uid }],
        },
      }),
    });
    await core.deleteNamespacedConfigMap({ name: 'owner', namespace: NS });
    await eventually(async () => {
      const left = await core.listNamespacedConfigMap({
        namespace: NS,
        fieldSelector: 'metadata.name=dependent',
      });
      return left.items.length === 0;
    });
  });
});
