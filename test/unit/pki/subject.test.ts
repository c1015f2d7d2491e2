// Subjects with every character a DN string escapes (or fails to): written as ASN.1 structures, read
// back exactly from the CSR, from the issued certificate, and by the agent from a real TLS handshake.
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  AttributeTypeAndValue,
  AttributeValue,
  Certificate,
  Name,
  RelativeDistinguishedName,
  Version,
} from '@peculiar/asn1-x509';
import { X509Certificate } from 'node:crypto';
import { type TLSSocket, connect, createServer } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { identityFromCertificate } from '../../../src/authn/identity.js';
import {
  type KeyPairPem,
  certificateDer,
  createCA,
  createCsr,
  issueCertificate,
  parseCsr,
  signCsr,
} from '../../../src/pki/ca.js';
import { type Subject, certificateSubject, subjectName } from '../../../src/pki/subject.js';
import { subjectFromDer } from '../../../src/pki/subject-der.js';

export const HOSTILE_SUBJECTS: Subject[] = [
  { commonName: 'alice, O=system:masters', organizations: ['devs'] },
  { commonName: 'alice+O=system:masters', organizations: ['a+b', 'c=d'] },
  { commonName: '#04056164616d696e', organizations: ['#0a0b'] },
  { commonName: 'back\\slash\\', organizations: ['"quoted"', '\\,'] },
  { commonName: ' leading and trailing ', organizations: [' ', ''] },
  { commonName: 'Ålice 名前 🙂', organizations: ['Grüppe', 'группа'] },
  { commonName: 'semi;colon<angle>', organizations: ['CN=root', 'new\nline'] },
];

let ca: KeyPairPem;
beforeAll(async () => {
  ca = await createCA({ commonName: 'subject test CA' });
});

describe('certificate subjects', () => {
  it.each(HOSTILE_SUBJECTS.map((s) => [JSON.stringify(s), s] as const))(
    'round-trips %s through the CSR and the issued certificate',
    async (_name, subject) => {
      const { csrPem } = await createCsr(subject);
      expect(parseCsr(csrPem)).toEqual(subject);
      const certPem = await signCsr(ca, csrPem, { validSeconds: 60, usage: 'client', subject });
      expect(certificateSubject(certificateDer(certPem))).toEqual(subject);
    },
  );

  it('is read by the agent from a real TLS handshake exactly as issued', async () => {
    const server = await issueCertificate(ca, {
      commonName: 'agent',
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    });
    const seen: unknown[] = [];
    const tls = createServer(
      { cert: server.certPem, key: server.keyPem, ca: ca.certPem, requestCert: true },
      (s: TLSSocket) => {
        seen.push(identityFromCertificate(s.getPeerX509Certificate()));
        s.end();
      },
    );
    await new Promise<void>((r) => tls.listen(0, '127.0.0.1', r));
    const port = (tls.address() as { port: number }).port;
    try {
      for (const subject of HOSTILE_SUBJECTS) {
        const client = await issueCertificate(ca, { ...subject, usage: 'client' });
        await new Promise<void>((resolve, reject) => {
          const c = connect({
            port,
            host: '127.0.0.1',
            ca: ca.certPem,
            cert: client.certPem,
            key: client.keyPem,
          });
          c.on('error', reject);
          c.on('close', () => resolve());
          c.resume();
        });
      }
    } finally {
      tls.close();
    }
    expect(seen).toEqual(
      HOSTILE_SUBJECTS.map((s) => expect.objectContaining({ user: s.commonName, groups: s.organizations })),
    );
  });

  it('reads each certificate once, but hands every connection its own groups', async () => {
    const peer = async (subject: Subject, validSeconds: number): Promise<X509Certificate> =>
      new X509Certificate(
        (await issueCertificate(ca, { ...subject, usage: 'client', validSeconds })).certPem,
      );
    const [a, b] = [HOSTILE_SUBJECTS[0]!, HOSTILE_SUBJECTS[1]!];
    const certA = await peer(a, 3600);
    const first = identityFromCertificate(certA);
    first.groups.push('system:masters');
    first.expiresAt!.setTime(0);
    // The same certificate again (a reconnect): the cached subject and expiry, untouched by the first caller.
    expect(identityFromCertificate(certA)).toMatchObject({
      user: a.commonName,
      groups: a.organizations,
      expiresAt: new Date(certA.validTo),
    });
    // Another certificate with another subject and expiry is not mistaken for the first.
    const certB = await peer(b, 7200);
    expect(identityFromCertificate(certB)).toMatchObject({
      user: b.commonName,
      groups: b.organizations,
      expiresAt: new Date(certB.validTo),
    });
  });

  const attr = (type: string, utf8String: string) =>
    new AttributeTypeAndValue({ type, value: new AttributeValue({ utf8String }) });

  it.each<[string, Name, RegExp]>([
    [
      'two common names',
      new Name([
        ...subjectName({ commonName: 'a', organizations: [] }),
        ...subjectName({ commonName: 'b', organizations: [] }),
      ]),
      /exactly one common name .* has 2/,
    ],
    ['no common name', new Name([new RelativeDistinguishedName([attr('2.5.4.10', 'devs')])]), /has 0/],
    [
      'CN and O in one RDN',
      new Name([new RelativeDistinguishedName([attr('2.5.4.3', 'a'), attr('2.5.4.10', 'system:masters')])]),
      /RDN of their own/,
    ],
    [
      'a CN that is not a string',
      new Name([
        new RelativeDistinguishedName([
          new AttributeTypeAndValue({
            type: '2.5.4.3',
            value: new AttributeValue({ anyValue: new Uint8Array([4, 1, 0x61]).buffer }),
          }),
        ]),
      ]),
      /not a UTF8/,
    ],
  ])('refuses a subject with %s', (_name, name, message) => {
    expect(() => subjectFromDer(new Uint8Array(AsnConvert.serialize(name)))).toThrow(message);
  });

  it('reads the subject of a v1 certificate (no version field) and refuses cut or padded DER', async () => {
    const subject = { commonName: 'alice', organizations: ['devs', 'ops'] };
    const der = certificateDer((await issueCertificate(ca, { ...subject, usage: 'client' })).certPem);
    const v1 = AsnConvert.parse(der, Certificate);
    v1.tbsCertificate.version = Version.v1;
    v1.tbsCertificate.extensions = undefined;
    const v1Der = new Uint8Array(AsnConvert.serialize(v1));
    expect(v1Der.length).toBeLessThan(der.length);
    expect(certificateSubject(v1Der)).toEqual(subject);
    expect(() => certificateSubject(der.subarray(0, 200))).toThrow(/not a DER X.509 certificate/);
    expect(() => certificateSubject(new Uint8Array([...der, 0]))).toThrow(/trailing bytes/);
    expect(() => certificateSubject(new Uint8Array([0x30, 0x80, 0, 0]))).toThrow(/not a DER X.509/);
  });
});
