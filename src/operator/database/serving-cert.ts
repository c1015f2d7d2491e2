// The agent's serving certificate, issued by the Drawbridge CA for the agent Service's DNS names. It is
// reused while it has more than a third of its life left and was issued by the current CA; a new one
// changes the pod template's digest annotation, which rolls the agent pods onto it.
import { createHash } from 'node:crypto';
import { type KeyPairPem, certificateExpiry, issueCertificate } from '../../pki/ca.js';
import type { KubeObject } from '../kube/types.js';
import { agentDnsNames } from '../names.js';

const VALID_SECONDS = 90 * 86_400;
const RENEW_BEFORE_MS = 30 * 86_400_000;

export interface ServingCert {
  /** Secret `data` (base64): tls.crt, tls.key, and ca.crt — the CA that client certificates must chain to. */
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
  now = new Date(),
): Promise<ServingCert> {
  const data = existing?.data as Record<string, string> | undefined;
  const certPem = text(data?.['tls.crt']);
  if (data && certPem && data['tls.key'] && text(data['ca.crt']) === ca.certPem) {
    const renewAt = renewTime(certPem);
    if (renewAt && renewAt.getTime() > now.getTime()) {
      return { data: pick(data), digest: digest(certPem), renewAt, issued: false };
    }
  }
  const issued = await issueCertificate(ca, {
    commonName: agentDnsNames(namespace, database)[0]!,
    // localhost and 127.0.0.1 serve `kubectl port-forward` and `kubectl db proxy`, which connect locally.
    dnsNames: [...agentDnsNames(namespace, database), 'localhost'],
    ipAddresses: ['127.0.0.1'],
    validSeconds: VALID_SECONDS,
    usage: 'server',
  });
  return {
    data: { 'tls.crt': b64(issued.certPem), 'tls.key': b64(issued.keyPem), 'ca.crt': b64(ca.certPem) },
    digest: digest(issued.certPem),
    renewAt: renewTime(issued.certPem)!,
    issued: true,
  };
}

function renewTime(certPem: string): Date | undefined {
  try {
    return new Date(certificateExpiry(certPem).getTime() - RENEW_BEFORE_MS);
  } catch {
    return undefined; // unparsable: issue a new one
  }
}

function pick(data: Record<string, string>): Record<string, string> {
  return { 'tls.crt': data['tls.crt']!, 'tls.key': data['tls.key']!, 'ca.crt': data['ca.crt']! };
}

function digest(certPem: string): string {
  return createHash('sha256').update(certPem).digest('hex').slice(0, 16);
}
