// The agent's serving TLS files: each bad one is named with what it should hold, a key is never echoed,
// and a certificate with another's key is caught before the agent listens.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ServerTlsFiles, serverContextFromFiles } from '../../../src/agent/tls.js';
import { type KeyPairPem, createCA, issueCertificate } from '../../../src/pki/ca.js';

let dir: string;
let ca: KeyPairPem;
let serving: KeyPairPem;
let other: KeyPairPem;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-tls-files-'));
  ca = await createCA({ commonName: 'tls files test CA' });
  serving = await issueCertificate(ca, { commonName: 'agent', dnsNames: ['agent'], usage: 'server' });
  other = await issueCertificate(ca, { commonName: 'other', dnsNames: ['other'], usage: 'server' });
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function files(parts: { cert?: string; key?: string; ca?: string }): Promise<ServerTlsFiles> {
  const f = {
    certFile: path.join(dir, 'tls.crt'),
    keyFile: path.join(dir, 'tls.key'),
    clientCAFile: path.join(dir, 'ca.crt'),
  };
  await writeFile(f.certFile, parts.cert ?? serving.certPem);
  await writeFile(f.keyFile, parts.key ?? serving.keyPem);
  await writeFile(f.clientCAFile, parts.ca ?? ca.certPem);
  return f;
}

function failure(f: ServerTlsFiles): { code?: string; message: string; hint?: string } {
  try {
    serverContextFromFiles(f);
  } catch (err) {
    return err as { code?: string; message: string; hint?: string };
  }
  throw new Error('the files were accepted');
}

it('builds the context from good files', async () => {
  expect(serverContextFromFiles(await files({}))).toBeDefined();
});

it('names the file that is missing', async () => {
  const f = { ...(await files({})), clientCAFile: path.join(dir, 'absent.crt') };
  expect(failure(f)).toMatchObject({
    code: 'INVALID_CONFIG',
    message: `tls.clientCAFile ${f.clientCAFile}: cannot read it (ENOENT)`,
    hint: 'point tls.clientCAFile at the PEM client CA certificate(s)',
  });
});

it('names a key that is not a key, without echoing it', async () => {
  const secretish = '-----BEGIN PRIVATE KEY-----\nc2VjcmV0LXBhcnQ=\n-----END PRIVATE KEY-----\n';
  const f = await files({ key: secretish });
  const err = failure(f);
  expect(err.message).toBe(`tls.keyFile ${f.keyFile}: not the PEM private key of the serving certificate`);
  expect(JSON.stringify(err)).not.toContain('c2VjcmV0');
});

it('names a certificate file that holds a key', async () => {
  const f = await files({ cert: serving.keyPem });
  expect(failure(f).message).toBe(`tls.certFile ${f.certFile}: not the PEM serving certificate`);
});

it("catches a certificate given with another certificate's key", async () => {
  const f = await files({ key: other.keyPem });
  const err = failure(f);
  expect(err.message).toContain(`tls.certFile ${f.certFile} and tls.keyFile ${f.keyFile} do not go together`);
  expect(err.hint).toBe('give the key of that certificate (or the certificate of that key)');
});
