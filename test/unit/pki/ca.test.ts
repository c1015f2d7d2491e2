import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { createCA, createCsr, issueCertificate, parseCsr, signCsr } from '../../../src/pki/ca.js';

const dir = mkdtempSync(join(tmpdir(), 'pki-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function openssl(...args: string[]): string {
  return execFileSync('openssl', args, { encoding: 'utf8' });
}

describe('pki', () => {
  it('issues certificates that OpenSSL verifies against the CA, with subject and SANs', async () => {
    const ca = await createCA({ commonName: 'test-ca' });
    const srv = await issueCertificate(ca, {
      commonName: 'agent',
      dnsNames: ['localhost'],
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    });
    writeFileSync(join(dir, 'ca.pem'), ca.certPem);
    writeFileSync(join(dir, 'srv.pem'), srv.certPem);
    expect(openssl('verify', '-CAfile', join(dir, 'ca.pem'), join(dir, 'srv.pem'))).toContain('OK');
    const text = openssl('x509', '-in', join(dir, 'srv.pem'), '-noout', '-text');
    expect(text).toContain('DNS:localhost');
    expect(text).toContain('IP Address:127.0.0.1');
    expect(text).toContain('TLS Web Server Authentication');
  });

  it('signs a CSR keeping CN and O, and the result completes a mutual TLS handshake', async () => {
    const ca = await createCA({ commonName: 'test-ca' });
    const srv = await issueCertificate(ca, {
      commonName: 'agent',
      ipAddresses: ['127.0.0.1'],
      usage: 'server',
    });
    const { csrPem, keyPem } = await createCsr({ commonName: 'alice', organizations: ['dba', 'dev'] });
    expect(parseCsr(csrPem)).toEqual({ commonName: 'alice', organizations: ['dba', 'dev'] });
    const certPem = await signCsr(ca, csrPem, {
      validSeconds: 600,
      usage: 'client',
      subject: parseCsr(csrPem),
    });

    const server = createServer(
      { cert: srv.certPem, key: srv.keyPem, ca: ca.certPem, requestCert: true },
      (s) => {
        const peer = s.getPeerCertificate();
        s.end(`${s.authorized}:${peer.subject.CN}:${[peer.subject.O].flat().join('+')}`);
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const reply = await new Promise<string>((resolve, reject) => {
      const c = connect({
        port,
        host: '127.0.0.1',
        ca: ca.certPem,
        cert: certPem,
        key: keyPem,
        servername: '127.0.0.1',
      });
      let out = '';
      c.on('data', (d) => (out += d));
      c.on('end', () => resolve(out));
      c.on('error', reject);
    });
    server.close();
    expect(reply).toBe('true:alice:dba+dev');
  });

  it('rejects a CSR whose signature does not verify', async () => {
    const ca = await createCA({ commonName: 'test-ca' });
    const { csrPem } = await createCsr({ commonName: 'mallory' });
    const body = Buffer.from(csrPem.replace(/-----[^-]+-----|\s/g, ''), 'base64');
    body.writeUInt8(body.readUInt8(body.length - 5) ^ 0xff, body.length - 5);
    const tampered = `-----BEGIN CERTIFICATE REQUEST-----\n${body.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const subject = { commonName: 'mallory', organizations: [] };
    await expect(signCsr(ca, tampered, { validSeconds: 60, usage: 'client', subject })).rejects.toThrow(
      /signature/,
    );
  });
});
