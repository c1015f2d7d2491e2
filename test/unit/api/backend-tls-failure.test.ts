// A TLS error on a backend connection after its handshake reads as a TLS failure with the fix for its
// cause, not as "the backend closed the connection": real OpenSSL errors from Node's own TLS, a server
// refusing the agent's (missing) certificate by alert, and a record the agent cannot read.
import { type AddressInfo, type Socket, createServer } from 'node:net';
import { type TLSSocket, connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { backendTlsFailure } from '../../../src/api/backend-tls.js';
import { Wire } from '../../../src/engines/postgres/wire.js';
import type { DrawbridgeError } from '../../../src/errors.js';
import { type KeyPairPem, createCA, issueCertificate } from '../../../src/pki/ca.js';

let ca: KeyPairPem;
let serving: KeyPairPem;
const closers: (() => void)[] = [];
beforeAll(async () => {
  ca = await createCA({ commonName: 'tls failure CA' });
  serving = await issueCertificate(ca, { commonName: 'db', ipAddresses: ['127.0.0.1'], usage: 'server' });
});
afterEach(() => closers.splice(0).forEach((close) => close()));

/**
 * A TLS 1.3 connection to a server that `after` its handshake refuses a client without a certificate
 * (an alert) or writes bytes that are no TLS record on the raw socket; resolves once connected.
 */
async function connectTo(after: 'alert' | 'garbage'): Promise<TLSSocket> {
  const raws: Socket[] = [];
  const server = createTlsServer({
    key: serving.keyPem,
    cert: serving.certPem,
    ca: ca.certPem,
    requestCert: after === 'alert',
    rejectUnauthorized: after === 'alert',
    minVersion: 'TLSv1.3',
  });
  server.on('connection', (raw: Socket) => raws.push(raw));
  server.on('tlsClientError', () => undefined);
  server.on('secureConnection', (s: TLSSocket) => {
    s.on('error', () => undefined);
    if (after === 'garbage') raws[0]!.write(Buffer.from('17030300ff' + 'ab'.repeat(255), 'hex'));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => server.close());
  const { port } = server.address() as AddressInfo;
  const socket = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, minVersion: 'TLSv1.3' });
  closers.push(() => socket.destroy());
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  return socket;
}

const errorOf = (s: TLSSocket) => new Promise<Error>((resolve) => s.once('error', resolve));

describe('backendTlsFailure', () => {
  it('names a server alert after the handshake (a refused client certificate) as the server refusing', async () => {
    const socket = await connectTo('alert');
    const failure = backendTlsFailure(await errorOf(socket), 'during login');
    expect(failure?.code).toBe('BACKEND_TLS');
    expect(failure?.message).toMatch(/^TLS to the backend failed during login: .*alert/);
    expect(failure?.hint).toMatch(/the server refused the TLS session.*client certificate/);
  });

  it("names any other OpenSSL error as the agent's OpenSSL's, not the server's", async () => {
    const socket = await connectTo('garbage');
    const failure = backendTlsFailure(await errorOf(socket), 'during login');
    expect(failure?.code).toBe('BACKEND_TLS');
    expect(failure?.hint).toMatch(/^the agent's OpenSSL raised it, not a server alert: check spec.tls/);
  });

  it('leaves errors that are not OpenSSL errors to the caller', async () => {
    const server = createServer((s) => s.resetAndDestroy());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    closers.push(() => server.close());
    const { port } = server.address() as AddressInfo;
    const s = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem });
    const err = await new Promise<Error>((resolve) => s.once('error', resolve));
    expect(backendTlsFailure(err, 'during login')).toBeUndefined();
    expect(backendTlsFailure(undefined, 'during login')).toBeUndefined();
  });
});

describe("PostgreSQL's startup reads (Wire)", () => {
  it("report the database's TLS alert as a TLS failure with its fix, not as a closed connection", async () => {
    const wire = new Wire(await connectTo('alert'), 'database');
    const err = (await wire.startup().catch((e: unknown) => e)) as DrawbridgeError;
    expect(err.code).toBe('BACKEND_TLS');
    expect(err.message).toMatch(/^TLS to the backend failed during startup: .*alert/);
    expect(err.hint).toMatch(/the server refused the TLS session/);
  });
});
