// The agent's serving certificate names its own Database and nothing any other agent could share.
import { X509Certificate } from 'node:crypto';
import { checkServerIdentity } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { servingCert } from '../../../src/operator/database/serving-cert.js';
import { agentName } from '../../../src/operator/names.js';
import { type KeyPairPem, createCA, issueCertificate } from '../../../src/pki/ca.js';

let ca: KeyPairPem;
beforeAll(async () => {
  ca = await createCA({ commonName: 'serving test CA' });
});

const pemOf = (data: Record<string, string>) => Buffer.from(data['tls.crt']!, 'base64').toString('utf8');
const svc = agentName('orders');

describe('servingCert', () => {
  it("names only the Database's own Service names, with their namespace", async () => {
    const cert = new X509Certificate(pemOf((await servingCert(undefined, 'shop', 'orders', ca)).data));
    expect(cert.subjectAltName!.split(', ').sort()).toEqual(
      [`DNS:${svc}.shop`, `DNS:${svc}.shop.svc`, `DNS:${svc}.shop.svc.cluster.local`].sort(),
    );
    const check = (name: string) => checkServerIdentity(name, cert.toLegacyObject());
    expect(check(`${svc}.shop.svc`)).toBeUndefined();
    // Names another agent could present too: another namespace's same-named Database, a bare service
    // name, and the loopback names a port-forward connects to.
    for (const other of [
      `${svc}.staging.svc`,
      svc,
      'localhost',
      '127.0.0.1',
      `${agentName('billing')}.shop.svc`,
    ]) {
      expect(check(other), other).toBeInstanceOf(Error);
    }
  });

  it('reissues a certificate that still names localhost or 127.0.0.1, and keeps a current one', async () => {
    const old = await issueCertificate(ca, {
      commonName: svc,
      dnsNames: [svc, `${svc}.shop`, `${svc}.shop.svc`, `${svc}.shop.svc.cluster.local`, 'localhost'],
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    });
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'tls' },
      data: { 'tls.crt': b64(old.certPem), 'tls.key': b64(old.keyPem), 'ca.crt': b64(ca.certPem) },
    };
    const renewed = await servingCert(secret, 'shop', 'orders', ca);
    expect(renewed.issued).toBe(true);
    expect(new X509Certificate(pemOf(renewed.data)).subjectAltName).not.toMatch(/localhost|127\.0\.0\.1/);

    const kept = await servingCert({ ...secret, data: renewed.data }, 'shop', 'orders', ca);
    expect(kept.issued).toBe(false);
    expect(kept.digest).toBe(renewed.digest);
  });
});
