/**
 * A throw-away PKI for the test control plane, in pure node:crypto + @peculiar/x509 so that no
 * openssl CLI version quirks leak into tests. ECDSA P-256 keeps key generation to milliseconds.
 */
import { webcrypto } from 'node:crypto';
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as x509 from '@peculiar/x509';
import { subjectName } from '../../src/pki/subject.js';

export interface Issued {
  certPem: string;
  keyPem: string;
}
export interface CA extends Issued {
  cert: x509.X509Certificate;
  key: webcrypto.CryptoKey;
}

export const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;
x509.cryptoProvider.set(webcrypto);

/**
 * Kubernetes reads the user from CN and each group from an O attribute. Built as ASN.1, so names full
 * of DN syntax (`,` `+` `=` `#` `\`) reach the API server as they are.
 */
export function subjectFor(user: string, groups: string[]): x509.Name {
  return new x509.Name(AsnConvert.serialize(subjectName({ commonName: user, organizations: groups })));
}

function validity(): { notBefore: Date; notAfter: Date } {
  // Back-dated a little for clock skew; a month covers the longest demo session.
  return { notBefore: new Date(Date.now() - 3_600_000), notAfter: new Date(Date.now() + 30 * 86_400_000) };
}

export async function privatePem(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

export async function publicPem(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('spki', key), 'PUBLIC KEY');
}

export async function newCA(cn: string): Promise<CA> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: [cn] }],
    keys: keys,
    signingAlgorithm: SIGN,
    ...validity(),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    cert,
    key: keys.privateKey,
    certPem: cert.toString('pem'),
    keyPem: await privatePem(keys.privateKey),
  };
}

export async function issue(
  ca: CA,
  subject: x509.Name | x509.JsonName,
  use: 'server' | 'client',
): Promise<Issued> {
  const keys = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    new x509.ExtendedKeyUsageExtension([
      use === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
    ]),
    await x509.AuthorityKeyIdentifierExtension.create(ca.cert.publicKey),
  ];
  if (use === 'server') {
    extensions.push(
      new x509.SubjectAlternativeNameExtension([
        { type: 'ip', value: '127.0.0.1' },
        { type: 'dns', value: 'localhost' },
      ]),
    );
  }
  const cert = await x509.X509CertificateGenerator.create({
    subject,
    issuer: ca.cert.subjectName,
    publicKey: keys.publicKey,
    signingKey: ca.key,
    signingAlgorithm: SIGN,
    ...validity(),
    extensions,
  });
  return { certPem: cert.toString('pem'), keyPem: await privatePem(keys.privateKey) };
}
