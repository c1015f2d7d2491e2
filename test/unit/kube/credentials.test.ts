// The pod's service account, read without client-node, against a real local HTTPS server: the CA is
// what the server is checked against, the bearer token is sent and re-read once the kubelet may have
// rotated it (older than a minute), and a pod without the mount gets an error naming the fix.
import { mkdtemp, writeFile } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KubeClient } from '../../../src/kube/client.js';
import { TOKEN_REREAD_MS, serviceAccountCredentials } from '../../../src/kube/credentials.js';
import { KubeApiError } from '../../../src/kube/errors.js';
import { type CA, issue, newCA } from '../../k8s/pki.js';

let ca: CA;
let server: https.Server;
let env: NodeJS.ProcessEnv;
const seen: (string | undefined)[] = [];
/** What the server answers a watch with: lines written in separate chunks. */
let watchReply: { status: number; chunks: string[] } = { status: 200, chunks: [] };

beforeAll(async () => {
  ca = await newCA('test-apiserver-ca');
  const serving = await issue(ca, [{ CN: ['kube-apiserver'] }], 'server');
  server = https.createServer({ cert: serving.certPem, key: serving.keyPem }, (req, res) => {
    seen.push(req.headers.authorization);
    if (req.url?.includes('watch=true')) {
      res.writeHead(watchReply.status, { 'content-type': 'application/json' });
      for (const c of watchReply.chunks) res.write(c);
      res.end();
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Namespace', metadata: { name: 'shop' } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  env = {
    KUBERNETES_SERVICE_HOST: '127.0.0.1',
    KUBERNETES_SERVICE_PORT: String((server.address() as AddressInfo).port),
  };
});

afterAll(() => new Promise((resolve) => server.close(resolve)));

/** A service account directory as the kubelet mounts it. */
async function mounted(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-sa-'));
  for (const [name, text] of Object.entries(files)) await writeFile(path.join(dir, name), text);
  return dir;
}

describe('serviceAccountCredentials', () => {
  it('sends the bearer token, checks the server with ca.crt, and re-reads a rotated token after a minute', async () => {
    const dir = await mounted({ 'ca.crt': ca.certPem, token: 'first\n', namespace: 'shop' });
    let clock = 0;
    const client = new KubeClient(serviceAccountCredentials(env, dir, () => clock));
    seen.length = 0;
    await expect(client.get('/api/v1/namespaces/shop')).resolves.toMatchObject({
      metadata: { name: 'shop' },
    });
    await writeFile(path.join(dir, 'token'), 'second'); // the kubelet rotates the token
    clock += TOKEN_REREAD_MS - 1;
    await client.get('/api/v1/namespaces/shop'); // not re-read on every request
    clock += 1;
    await client.get('/api/v1/namespaces/shop');
    expect(seen).toEqual(['Bearer first', 'Bearer first', 'Bearer second']);
    client.close();
  });

  it('refuses a server its ca.crt did not issue', async () => {
    const other = await newCA('another-ca');
    const dir = await mounted({ 'ca.crt': other.certPem, token: 't' });
    const client = new KubeClient(serviceAccountCredentials(env, dir));
    await expect(client.get('/api/v1/namespaces/shop')).rejects.toThrow(/certificate/);
    client.close();
  });

  it('names the fix when the token or ca.crt is not mounted, or the pod environment is missing', async () => {
    const noToken = await mounted({ 'ca.crt': ca.certPem });
    expect(() => serviceAccountCredentials(env, noToken)).toThrow(
      /service account's token at .*token \(ENOENT\): mount the token \(automountServiceAccountToken: true\) or pass --kubeconfig/,
    );
    const noCa = await mounted({ token: 't' });
    expect(() => serviceAccountCredentials(env, noCa)).toThrow(/ca\.crt .*ENOENT.*or pass --kubeconfig/);
    expect(() => serviceAccountCredentials({}, noCa)).toThrow(
      /KUBERNETES_SERVICE_HOST .* run in a pod or pass --kubeconfig/,
    );
  });

  it('brackets an IPv6 Service address', async () => {
    const dir = await mounted({ 'ca.crt': ca.certPem, token: 't' });
    const v6 = { KUBERNETES_SERVICE_HOST: 'fd00::1', KUBERNETES_SERVICE_PORT: '443' };
    expect(serviceAccountCredentials(v6, dir).server.href).toBe('https://[fd00::1]/');
  });
});

describe('KubeClient.watch', () => {
  it('delivers events split across chunks, then ends without error when the server closes', async () => {
    const dir = await mounted({ 'ca.crt': ca.certPem, token: 't' });
    const client = new KubeClient(serviceAccountCredentials(env, dir));
    const added = JSON.stringify({
      type: 'ADDED',
      object: { metadata: { name: 'a', resourceVersion: '2' } },
    });
    watchReply = {
      status: 200,
      chunks: [added.slice(0, 10), `${added.slice(10)}\n{"type":"BOOK`, 'MARK","object":{}}\n'],
    };
    const events: string[] = [];
    const ended = new Promise(
      (resolve) =>
        void client.watch(
          '/api/v1/secrets',
          { resourceVersion: '1' },
          (type, obj) => events.push(`${type} ${obj.metadata?.name}`),
          resolve,
        ),
    );
    expect(await ended).toBeNull();
    expect(events).toEqual(['ADDED a', 'BOOKMARK undefined']);
    client.close();
  });

  it("ends with the server's status as a KubeApiError (410 Gone: list again)", async () => {
    const dir = await mounted({ 'ca.crt': ca.certPem, token: 't' });
    const client = new KubeClient(serviceAccountCredentials(env, dir));
    watchReply = { status: 410, chunks: [JSON.stringify({ kind: 'Status', code: 410, reason: 'Expired' })] };
    const err = await new Promise(
      (resolve) => void client.watch('/api/v1/secrets', {}, () => undefined, resolve),
    );
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).status).toBe(410);
    client.close();
  });
});
