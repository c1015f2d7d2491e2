// Drawbridge's certificate authority: the agent's serving certificates, short-lived client certificates
// signed from Kubernetes CSRs, and throwaway CAs for demos and tests. ECDSA P-256 keys: fast to make,
// accepted by PostgreSQL, Redis and Kubernetes.
// @peculiar/x509 resolves its services through tsyringe, which needs the Reflect metadata API.
import 'reflect-metadata';
import { webcrypto, randomBytes, createPrivateKey } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import * as x509 from '@peculiar/x509';
import { type Subject, subjectName } from './subject.js';
import { csrSubject } from './subject-der.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface KeyPairPem {
  certPem: string;
  keyPem: string;
}

export type Usage = 'server' | 'client' | 'both';

export interface CertificateRequest {
  commonName: string;
  organizations?: string[];
  dnsNames?: string[];
  ipAddresses?: string[];
  /** Default: one year for servers, one hour for clients. */
  validSeconds?: number;
  usage: Usage;
}

/** Built from ASN.1 structures (src/pki/subject.ts); handed over as DER, never as a DN string. */
function subject(commonName: string, organizations: string[] = []): x509.Name {
  return new x509.Name(AsnConvert.serialize(subjectName({ commonName, organizations })));
}

function serial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f; // positive
  return b.toString('hex');
}

async function exportKey(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  // PKCS#8 is what OpenSSL, PostgreSQL and Redis all read.
  return x509.PemConverter.encode(der, 'PRIVATE KEY');
}

async function importKey(pem: string): Promise<CryptoKey> {
  // Accept PKCS#8 and SEC1 ("EC PRIVATE KEY") by normalising through node:crypto.
  const pkcs8 = createPrivateKey(pem).export({ type: 'pkcs8', format: 'der' });
  return webcrypto.subtle.importKey('pkcs8', pkcs8, ALG, true, ['sign']);
}

function usageExtensions(usage: Usage): x509.Extension[] {
  const eku = [
    ...(usage !== 'client' ? [x509.ExtendedKeyUsage.serverAuth] : []),
    ...(usage !== 'server' ? [x509.ExtendedKeyUsage.clientAuth] : []),
  ];
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension(eku),
  ];
}

export async function createCA(opts: { commonName: string; validDays?: number }): Promise<KeyPairPem> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: subject(opts.commonName, ['drawbridge']),
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (opts.validDays ?? 3650) * 86_400_000),
    keys,
    signingAlgorithm: SIGN,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: await exportKey(keys.privateKey) };
}

async function sign(
  ca: KeyPairPem,
  publicKey: x509.PublicKey | CryptoKey,
  req: CertificateRequest,
): Promise<string> {
  const caCert = new x509.X509Certificate(ca.certPem);
  const validSeconds = req.validSeconds ?? (req.usage === 'client' ? 3600 : 365 * 86_400);
  const now = Date.now();
  const names = [
    ...(req.dnsNames ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(req.ipAddresses ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: subject(req.commonName, req.organizations),
    issuer: caCert.subject,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + validSeconds * 1000),
    publicKey,
    signingKey: await importKey(ca.keyPem),
    signingAlgorithm: SIGN,
    extensions: [
      ...usageExtensions(req.usage),
      ...(names.length ? [new x509.SubjectAlternativeNameExtension(names)] : []),
      await x509.AuthorityKeyIdentifierExtension.create(caCert),
    ],
  });
  return cert.toString('pem');
}

export async function issueCertificate(ca: KeyPairPem, req: CertificateRequest): Promise<KeyPairPem> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  return { certPem: await sign(ca, keys.publicKey, req), keyPem: await exportKey(keys.privateKey) };
}

/**
 * The largest PEM CSR the signer reads (kubectl db login's is ~0.4 KiB, an RSA-4096 one ~2 KiB). The
 * ASN.1 library that checks a CSR's signature spent ~150 ms of the operator's event loop on one of
 * 2,000 RDNs (33 KiB), and the API server stores CSRs of up to ~1.5 MiB (etcd's limit).
 */
export const MAX_CSR_PEM = 16 * 1024;

const CSR_PEM =
  /-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----([A-Za-z0-9+/=\s]*)-----END (?:NEW )?CERTIFICATE REQUEST-----/;

/** The DER of the first CERTIFICATE REQUEST block: what parseCsr reads is what signCsr signs. */
function csrDer(csrPem: string): Uint8Array {
  const base64 = CSR_PEM.exec(csrPem)?.[1];
  if (base64 === undefined) throw new Error('no -----BEGIN CERTIFICATE REQUEST----- block');
  return new Uint8Array(Buffer.from(base64, 'base64'));
}

/** The CSR's CN and O values (exactly one CN), read from its own DER bytes, as the agent reads a certificate. */
export function parseCsr(csrPem: string): Subject {
  return csrSubject(csrDer(csrPem));
}

/**
 * Signs a PKCS#10 request after checking its self-signature. Only its key is taken: the subject is
 * `opts.subject`, what the caller approved, not a copy of the CSR's, and none of the extensions it
 * requests (SANs, CA, key usages) is copied.
 */
export async function signCsr(
  ca: KeyPairPem,
  csrPem: string,
  opts: { validSeconds: number; usage: Usage; subject: Subject },
): Promise<string> {
  const csr = new x509.Pkcs10CertificateRequest(csrDer(csrPem));
  if (!(await csr.verify())) throw new Error('CSR signature does not verify: the request was altered');
  return sign(ca, csr.publicKey, { ...opts.subject, usage: opts.usage, validSeconds: opts.validSeconds });
}

/** The DER bytes of a PEM certificate. */
export function certificateDer(certPem: string): Uint8Array {
  return new Uint8Array(new x509.X509Certificate(certPem).rawData);
}

/** A key and a CSR for `kubectl db login`: the key never leaves the person's machine. */
export async function createCsr(info: {
  commonName: string;
  organizations?: string[];
}): Promise<{ csrPem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify'])) as CryptoKeyPair;
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject(info.commonName, info.organizations),
    keys,
    signingAlgorithm: SIGN,
  });
  return { csrPem: csr.toString('pem'), keyPem: await exportKey(keys.privateKey) };
}

export function certificateExpiry(certPem: string): Date {
  return new x509.X509Certificate(certPem).notAfter;
}
