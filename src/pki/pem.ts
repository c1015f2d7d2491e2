// The certificates of a PEM bundle (a CA file that holds two CAs during a rotation, a chain), each as
// its own PEM text for X509Certificate. No ASN.1 library: the agent imports this.
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

export function pemCertificates(bundle: string): string[] {
  return bundle.match(PEM_CERTIFICATE) ?? [];
}
