// CSRs written byte by byte by someone who may submit any: the signer approves what the CSR's own bytes
// say, refuses huge ones before any ASN.1 library walks them, signs the key of the very request it read,
// and copies nothing else from it (no SAN, CA flag or server usage).
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { AccessRole, DatabaseUser } from '../../../src/api/access.js';
import { type AccessSource, type CsrRequest, decideCsr } from '../../../src/operator/csr/decide.js';
import { ANNOTATION_DATABASE } from '../../../src/operator/names.js';
import { type KeyPairPem, createCA, signCsr } from '../../../src/pki/ca.js';
import { csrPem, der, extensionRequest, requestedExtensions } from '../../fuzz/der-subject.js';

const V = 'drawbridge.dev/v1alpha1';
/** alice, holding one role `name` that allows `allow`. */
const aliceWith = (name: string, allow: object) => ({
  roles: [AccessRole.parse({ apiVersion: V, kind: 'AccessRole', metadata: { name }, spec: { allow } })],
  users: [
    DatabaseUser.parse({
      apiVersion: V,
      kind: 'DatabaseUser',
      metadata: { name: 'alice' },
      spec: { subjects: [{ kind: 'User', name: 'alice' }], roles: [name] },
    }),
  ],
});
const source: AccessSource = {
  database: () => ({
    apiVersion: V,
    kind: 'Database',
    metadata: { name: 'orders', namespace: 'shop', labels: { env: 'prod' } },
    spec: { protocol: 'postgres', uri: 'postgres://db:5432', auth: { type: 'passthrough' } },
  }),
  policy: () => aliceWith('all', { databaseLabels: { '*': '*' }, databaseUsers: ['*'] }),
};

const alice = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rdn = (oid: number[], tag: number, value: number[] | string) =>
  der(0x31, der(0x30, der(0x06, oid), der(tag, value)));
const CN = [0x55, 4, 3];
const OU = [0x55, 4, 11];
const UTF8 = 0x0c;

const request = (requestPem: string): CsrRequest => ({
  username: 'alice',
  groups: ['system:authenticated'],
  requestPem,
  usages: ['client auth'],
  annotations: { [ANNOTATION_DATABASE]: 'shop/orders' },
});

describe('hostile CSRs', () => {
  let ca: KeyPairPem;
  beforeAll(async () => {
    ca = await createCA({ commonName: 'hostile CSR test' });
  });

  it('reads the CN from the CSR bytes: UniversalString U+10061 "lice" is not alice', () => {
    // The ASN.1 library re-encoded the subject keeping 16 bits of each character: "alice".
    const name = der(
      0x30,
      rdn(CN, 0x1c, [0, 1, 0, 0x61, ...[...'lice'].flatMap((c) => [0, 0, 0, c.charCodeAt(0)])]),
    );
    const d = decideCsr(request(csrPem(name, alice)), source);
    expect(d).toMatchObject({ approved: false, reason: 'SubjectMismatch' });
    expect(d.message).toContain('CN=\u{10061}lice');
  });

  it('refuses a CSR of thousands of RDNs by its size, before parsing it', () => {
    const name = der(0x30, rdn(CN, UTF8, 'alice'), ...Array.from({ length: 2000 }, () => rdn(OU, UTF8, 'x')));
    const pem = csrPem(name, alice);
    expect(pem.length).toBeGreaterThan(30_000);
    expect(decideCsr(request(pem), source)).toMatchObject({
      approved: false,
      reason: 'InvalidRequest',
      message: expect.stringMatching(/spec.request is \d+ bytes: the signer reads CSRs of up to 16384 bytes/),
    });
  });

  it('signs the key of the CSR it read, not of another PEM block before it', async () => {
    const bob = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const bobs = csrPem(der(0x30, rdn(CN, UTF8, 'bob')), bob).replace(/CERTIFICATE REQUEST/g, 'X509 CRL');
    const pem = bobs + csrPem(der(0x30, rdn(CN, UTF8, 'alice')), alice);
    const d = decideCsr(request(pem), source);
    expect(d).toMatchObject({ approved: true, subject: { commonName: 'alice', organizations: [] } });
    if (!d.approved) return;
    const cert = new X509Certificate(
      await signCsr(ca, pem, { validSeconds: 60, usage: 'client', subject: d.subject }),
    );
    expect(cert.subject).toBe('CN=alice');
    expect(cert.publicKey.equals(alice.publicKey)).toBe(true);
  });

  it('copies none of the extensions a CSR requests: no SAN, no CA, no server usage', async () => {
    const name = der(0x30, rdn(CN, UTF8, 'alice'));
    const asks = extensionRequest(
      requestedExtensions.caTrue,
      requestedExtensions.serverAuth,
      requestedExtensions.dnsName('orders.shop.svc'),
    );
    const pem = csrPem(name, alice, [asks]);
    const d = decideCsr(request(pem), source);
    expect(d.approved).toBe(true);
    if (!d.approved) return;
    const cert = new X509Certificate(
      await signCsr(ca, pem, { validSeconds: 60, usage: 'client', subject: d.subject }),
    );
    expect(cert.ca).toBe(false);
    expect(cert.subjectAltName).toBeUndefined();
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.2']); // clientAuth only
  });
});

// The namespace's rules are the tenant's to write, and the controller decides every namespace's CSRs on
// one event loop: a CSR must cost it a bounded number of evaluations of those rules, and its status a
// bounded message, however many database users a role names.
describe('hostile roles', () => {
  // The most one rule may list (the CRD's maxItems); a DatabaseUser may hold 32 such roles.
  const N = 64;
  const bloated: AccessSource = {
    database: source.database,
    // Regexes that do not match their own text: no candidate is ever allowed.
    policy: () =>
      aliceWith('bloated', {
        databaseLabels: { '*': '*' },
        databaseUsers: Array.from({ length: N }, (_, i) => `^u${i}$`),
      }),
  };

  it('tries 16 of the database users its roles name, says so, and names --db-user', () => {
    const d = decideCsr(request(csrPem(der(0x30, rdn(CN, UTF8, 'alice')), alice)), bloated);
    expect(d).toMatchObject({ approved: false, reason: 'AccessDenied' });
    expect(d.message).toMatch(
      /^tried 16 of the 64 database users your roles name; for another, annotate the CSR with drawbridge.dev\/db-user: NAME \(kubectl db login --db-user NAME\): access to orders as database user "\^u0\$" denied/,
    );
    expect(d.message.length).toBeLessThanOrEqual(2048);
  });

  it('still signs for a database user it names', () => {
    const req = request(csrPem(der(0x30, rdn(CN, UTF8, 'alice')), alice));
    req.annotations['drawbridge.dev/db-user'] = 'u63';
    expect(decideCsr(req, bloated)).toMatchObject({ approved: true, reason: 'AccessAllowed' });
  });
});
