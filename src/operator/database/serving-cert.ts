// The agent's serving certificate, issued by the Drawbridge CA for the agent Service's DNS names. It
// names its own Database only (`<service>.<namespace>…`): no `localhost`, `127.0.0.1` or bare service
// name, which every agent (or a same-named Database in another namespace) would share, so one agent's
// certificate never passes for another's. Clients on a port-forward connect to 127.0.0.1 and verify the
// Database's name (kubectl db does). The certificate is reused while it has more than a third of its
// life left, was issued by the signing CA and names exactly these names; a new one changes the pod
// template's digest annotation, which rolls the agent pods onto it. ca.crt is the trust bundle (the
// signing CA, and during a rotation the other one: ca-rotation.ts); a change of it rolls them too.
import { X509Certificate, createHash } from 'node:crypto';
import { type KeyPairPem, certificateExpiry, issueCertificate } from '../../pki/ca.js';
import type { KubeObject } from '../../kube/types.js';
import { agentDnsNames } from '../names.js';

const VALID_SECONDS = 90 * 86_400;
const RENEW_BEFORE_MS = 30 * 86_400_000;

export interface ServingCert {
  /** Secret `data` (base64): tls.crt, tls.key, and ca.crt — the CAs that client certificates must chain to. */
  data: Record<string, string>;
  /** Short digest of the certificate, for the pod template annotation. */
  digest: string;
  /** When to issue the next one. */
  renewAt: Date;
  issued: boolean;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');
const text = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : undefined);

export async function servingCert(
  existing: KubeObject | undefined,
  namespace: string,
  database: string,
  ca: KeyPairPem,
  trusted = ca.certPem,
  now = new Date(),
): Promise<ServingCert> {
  const data = existing?.data as Record<string, string> | undefined;
  const certPem = text(data?.['tls.crt']);
  const names = servingNames(namespace, database);
  if (data && certPem && data['tls.key'] && issuedBy(certPem, ca.certPem) && namesOnly(certPem, names)) {
    const renewAt = renewTime(certPem);
    if (renewAt && renewAt.getTime() > now.getTime()) {
      const kept = { 'tls.crt': data['tls.crt']!, 'tls.key': data['tls.key']!, 'ca.crt': b64(trusted) };
      return { data: kept, digest: digest(certPem, ca, trusted), renewAt, issued: false };
    }
  }
  const issued = await issueCertificate(ca, {
    commonName: names[0]!,
    dnsNames: names,
    validSeconds: VALID_SECONDS,
    usage: 'server',
  });
  return {
    data: { 'tls.crt': b64(issued.certPem), 'tls.key': b64(issued.keyPem), 'ca.crt': b64(trusted) },
    digest: digest(issued.certPem, ca, trusted),
    renewAt: renewTime(issued.certPem)!,
    issued: true,
  };
}

/** The agent Service's names that include its namespace: unique to this Database. */
function servingNames(namespace: string, database: string): string[] {
  return agentDnsNames(namespace, database).filter((n) => n.includes('.'));
}

/** Whether the certificate's SANs are exactly `names` (an older one also named localhost/127.0.0.1). */
function namesOnly(certPem: string, names: string[]): boolean {
  try {
    const sans = new X509Certificate(certPem).subjectAltName?.split(', ') ?? [];
    return sans.length === names.length && names.every((n) => sans.includes(`DNS:${n}`));
  } catch {
    return false;
  }
}

function renewTime(certPem: string): Date | undefined {
  try {
    return new Date(certificateExpiry(certPem).getTime() - RENEW_BEFORE_MS);
  } catch {
    return undefined; // unparsable: issue a new one
  }
}

/** Whether `ca` signed the certificate: after a rotation's update step, one from the old CA is replaced. */
function issuedBy(certPem: string, caPem: string): boolean {
  try {
    const issuer = new X509Certificate(caPem);
    const cert = new X509Certificate(certPem);
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/**
 * The bundle joins the digest only while it holds more than the signing CA: a controller upgrade
 * leaves every agent's digest (of its certificate alone) as it was, so no agent rolls for it.
 */
function digest(certPem: string, ca: KeyPairPem, trusted: string): string {
  const hash = createHash('sha256').update(certPem);
  if (trusted !== ca.certPem) hash.update(trusted);
  return hash.digest('hex').slice(0, 16);
}
