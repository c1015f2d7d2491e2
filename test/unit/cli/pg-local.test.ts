// The proxy's PostgreSQL startup handling against a loopback TLS "agent" that speaks just the
// SSLRequest dance and records what arrives over TLS.
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { TLSSocket, createSecureContext } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dialAgent } from '../../../src/cli/db/dial.js';
import { forwardedPacket, servePostgresClient } from '../../../src/cli/db/pg-local.js';
import { cancelRequest, startupMessage } from '../../../src/engines/postgres/serializer.js';
import { DrawbridgeError } from '../../../src/errors.js';
import { createCA, issueCertificate } from '../../../src/pki/ca.js';

const SSL_REQUEST = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f]);

interface Received {
  bytes: Buffer;
  peerCN: string | undefined;
}

let agent: Server;
let agentPort: number;
let received: Promise<Received>;
let onReceived: (r: Received) => void;
let clientTls: { key: string; cert: string; ca: string };

beforeAll(async () => {
  const ca = await createCA({ commonName: 'pg-local-test' });
  const serving = await issueCertificate(ca, {
    commonName: 'agent',
    dnsNames: ['agent.test'],
    usage: 'server',
  });
  const client = await issueCertificate(ca, { commonName: 'alice', usage: 'client' });
  clientTls = { key: client.keyPem, cert: client.certPem, ca: ca.certPem };
  const context = createSecureContext({ cert: serving.certPem, key: serving.keyPem, ca: ca.certPem });
  agent = createServer((socket) => {
    socket.once('data', (first) => {
      expect(first).toEqual(SSL_REQUEST);
      socket.write('S');
      const tls = new TLSSocket(socket, { isServer: true, secureContext: context, requestCert: true });
      const chunks: Buffer[] = [];
      tls.on('data', (c: Buffer) => {
        chunks.push(c);
        tls.write('ok');
      });
      tls.on('end', () => {
        onReceived({ bytes: Buffer.concat(chunks), peerCN: tls.getPeerCertificate().subject?.CN as string });
        tls.end();
      });
    });
  });
  await new Promise<void>((r) => agent.listen(0, '127.0.0.1', r));
  agentPort = (agent.address() as AddressInfo).port;
});

afterAll(() => new Promise<void>((r) => agent.close(() => r())));

/** A proxy on a loopback port whose connections go to the test agent. */
async function proxy(
  dial = () =>
    dialAgent(
      'postgres',
      { host: '127.0.0.1', port: agentPort, serverName: 'agent.test' },
      {
        key: Buffer.from(clientTls.key),
        cert: Buffer.from(clientTls.cert),
        ca: Buffer.from(clientTls.ca),
      },
    ),
): Promise<{ port: number; close(): void }> {
  const srv = createServer((s) => void servePostgresClient(s, dial));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  received = new Promise((r) => (onReceived = r));
  return { port: (srv.address() as AddressInfo).port, close: () => srv.close() };
}

/** Writes `bytes` one at a time (every TCP split point) and collects what the proxy sends back. */
async function talk(
  port: number,
  bytes: Buffer,
  untilBytes: number,
): Promise<{ socket: Socket; reply: Buffer }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  socket.setNoDelay(true);
  const chunks: Buffer[] = [];
  const reply = new Promise<Buffer>((resolve) => {
    const done = () => resolve(Buffer.concat(chunks));
    socket.on('data', (c: Buffer) => {
      chunks.push(c);
      if (Buffer.concat(chunks).length >= untilBytes) done();
    });
    socket.on('close', done);
  });
  for (const b of bytes) {
    socket.write(Buffer.from([b]));
    await new Promise((r) => setImmediate(r));
  }
  return { socket, reply: await reply };
}

describe('kubectl db proxy, PostgreSQL side', () => {
  it('refuses TLS locally, then relays the startup message over TLS with the client certificate', async () => {
    const p = await proxy();
    const startup = startupMessage([
      ['user', 'app'],
      ['database', 'orders'],
    ]);
    const { socket, reply } = await talk(p.port, Buffer.concat([SSL_REQUEST, startup]), 3);
    expect(reply.toString()).toBe('Nok');
    socket.end();
    const got = await received;
    expect(got.bytes).toEqual(startup);
    expect(got.peerCN).toBe('alice');
    p.close();
  });

  it('forwards a CancelRequest to the agent the same way', async () => {
    const p = await proxy();
    const { socket } = await talk(p.port, cancelRequest(4242, 77), 0);
    socket.end();
    expect((await received).bytes).toEqual(cancelRequest(4242, 77));
    p.close();
  });

  it('keeps the protocol version the client asked for', () => {
    const packet = forwardedPacket({ kind: 'startup', major: 3, minor: 2, params: new Map([['user', 'u']]) });
    expect(packet.readInt32BE(4)).toBe((3 << 16) | 2);
  });

  it('answers a login problem with a PostgreSQL ErrorResponse carrying the hint', async () => {
    const p = await proxy(() =>
      Promise.reject(
        new DrawbridgeError('SESSION_EXPIRED', 'your certificate expired', 'run kubectl db login orders'),
      ),
    );
    const { reply } = await talk(
      p.port,
      Buffer.concat([SSL_REQUEST, startupMessage([['user', 'app']])]),
      1000,
    );
    expect(reply[0]).toBe('N'.charCodeAt(0));
    expect(reply[1]).toBe('E'.charCodeAt(0));
    const text = reply.subarray(6).toString();
    expect(text).toContain('C28000');
    expect(text).toContain('Mkubectl db proxy: your certificate expired');
    expect(text).toContain('Hrun kubectl db login orders');
    p.close();
  });

  it('closes a connection that does not speak PostgreSQL, without dialing the agent', async () => {
    let dialed = false;
    const p = await proxy(() => {
      dialed = true;
      return Promise.reject(new Error('unreachable'));
    });
    const { reply } = await talk(p.port, Buffer.from('GET / HTTP/1.1\r\n\r\n'), 1000);
    expect(reply.length).toBe(0);
    expect(dialed).toBe(false);
    p.close();
  });
});
