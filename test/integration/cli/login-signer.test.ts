/**
 * `kubectl db login` against a real API server whose CSR status is written by someone other than the
 * drawbridge controller (here the test, as a rogue signer would): a certificate for another key, or
 * for our key from another CA, is refused with the reason and never stored; the CA's own certificate
 * for our key is. No controller runs, so the test alone decides what the CSR's status holds.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { CA_CONFIGMAP_NAME } from '../../../src/operator/ca-store.js';
import { ANNOTATION_DATABASE } from '../../../src/operator/names.js';
import { type KeyPairPem, createCA, issueCertificate, signCsr } from '../../../src/pki/ca.js';
import { type ControlPlane, startControlPlane } from '../../k8s/controlplane.js';

const PLUGIN = path.resolve('dist/src/cli/kubectl-db.js');
const CONTROLLER_NS = 'drawbridge';
const NS = 'shop';
let plane: ControlPlane;
let ca: KeyPairPem;
let home: string;

type Csr = {
  metadata: { name: string; annotations?: Record<string, string> };
  spec: { request: string };
  status?: { certificate?: string; conditions?: { type: string }[] };
};

beforeAll(async () => {
  plane = await startControlPlane();
  ca = await createCA({ commonName: 'drawbridge' });
  home = await mkdtemp(path.join(os.tmpdir(), 'db-login-'));
  await plane.kubectl(['apply', '-f', path.resolve('crds')]);
  for (const ns of [CONTROLLER_NS, NS]) await plane.kubectl(['create', 'namespace', ns]);
  const objects = [
    {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: CA_CONFIGMAP_NAME, namespace: CONTROLLER_NS },
      data: { 'ca.crt': ca.certPem },
    },
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'orders', namespace: NS },
      spec: { protocol: 'postgres', uri: 'postgres://db:5432', auth: { type: 'passthrough' } },
    },
  ];
  await plane.kubectl(['apply', '-f', '-'], { input: objects.map((o) => stringify(o)).join('---\n') });
}, 120_000);

afterAll(async () => {
  await plane?.stop();
  if (home) await rm(home, { recursive: true, force: true });
});

/** The CSR of the login now waiting (none has a certificate yet), once it exists. */
async function pendingCsr(): Promise<Csr> {
  for (let i = 0; i < 240; i++) {
    const list = JSON.parse(await plane.kubectl(['get', 'csr', '-o', 'json'])) as { items: Csr[] };
    const csr = list.items.find(
      (c) => c.metadata.annotations?.[ANNOTATION_DATABASE] === `${NS}/orders` && !c.status?.certificate,
    );
    if (csr) return csr;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error('no CertificateSigningRequest from kubectl db login');
}

/** Runs `kubectl db login` and answers its CSR with the certificate `issue` makes from the request. */
async function loginAnswered(issue: (csrPem: string) => Promise<string>) {
  const child = spawn(process.execPath, [PLUGIN, '-n', NS, 'login', 'orders', '--db-user', 'app'], {
    env: { ...process.env, KUBECONFIG: plane.kubeconfigPath, DRAWBRIDGE_HOME: home },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('close', r));
  const csr = await pendingCsr();
  const certPem = await issue(Buffer.from(csr.spec.request, 'base64').toString('utf8'));
  await plane.kubectl(['certificate', 'approve', csr.metadata.name]);
  const status = { status: { certificate: Buffer.from(certPem).toString('base64') } };
  await plane.kubectl([
    'patch',
    'csr',
    csr.metadata.name,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify(status),
  ]);
  return { code: await exited, stderr, csr: csr.metadata.name };
}

const stored = () => existsSync(path.join(home, 'admin', NS, 'orders', 'tls.crt'));
const subject = { commonName: 'admin', organizations: ['system:masters'] };

describe('kubectl db login checks the certificate it is issued', () => {
  it('refuses a certificate for another key, even one our CA signed', async () => {
    const r = await loginAnswered(
      async () => (await issueCertificate(ca, { ...subject, usage: 'client' })).certPem,
    );
    expect(r.stderr).toContain(
      `certificate request ${r.csr}: the issued certificate is for another key than the one this login made; it was not stored`,
    );
    expect(r.code).not.toBe(0);
    expect(stored()).toBe(false);
  });

  it('refuses a certificate for our key from another CA, even one named like ours', async () => {
    const impostor = await createCA({ commonName: 'drawbridge' });
    const r = await loginAnswered((csrPem) =>
      signCsr(impostor, csrPem, { validSeconds: 3600, usage: 'client', subject }),
    );
    expect(r.stderr).toMatch(
      /the issued certificate is not signed by the agents' CA \(issuer "CN=drawbridge/,
    );
    expect(r.code).not.toBe(0);
    expect(stored()).toBe(false);
  });

  it("stores the agents' CA's certificate for our key", async () => {
    const r = await loginAnswered((csrPem) =>
      signCsr(ca, csrPem, { validSeconds: 3600, usage: 'client', subject }),
    );
    expect(r.stderr).not.toMatch(/error:/);
    expect(r.code).toBe(0);
    expect(stored()).toBe(true);
  });
});
