// The backend ClientHello's key shares, against real TLS servers (Node's own OpenSSL): a server without
// the post-quantum group is offered one X25519 share once it has chosen X25519, and a server with it is
// always post-quantum, also after it was learnt as classical (it asks for the group by HelloRetryRequest).
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import {
  type SecureContext,
  type TLSSocket,
  connect as tlsConnect,
  createServer as createTlsServer,
} from 'node:tls';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { withSharedContext } from '../../../src/api/backend-tls.js';
import { HYBRID_KEY_SHARES, contextFor, noteKeyExchange } from '../../../src/api/backend-key-share.js';
import { type KeyPairPem, createCA, issueCertificate } from '../../../src/pki/ca.js';

const HYBRID = 'X25519MLKEM768';
const GROUP_NAMES: Record<number, string> = { 0x11ec: HYBRID, 0x1d: 'X25519', 0x17: 'P-256' };
/** supported_groups and key_share groups of a ClientHello record. */
function helloGroups(record: Buffer): { groups: string[]; shares: string[] } {
  let p = 5 + 4 + 2 + 32; // record header, handshake header, version, random
  p += 1 + record[p]!; // session id
  p += 2 + record.readUInt16BE(p); // cipher suites
  p += 1 + record[p]!; // compression methods
  const end = p + 2 + record.readUInt16BE(p);
  const out = { groups: [] as string[], shares: [] as string[] };
  const name = (g: number) => GROUP_NAMES[g] ?? `0x${g.toString(16)}`;
  for (p += 2; p < end;) {
    const type = record.readUInt16BE(p);
    const data = record.subarray(p + 4, p + 4 + record.readUInt16BE(p + 2));
    p += 4 + data.length;
    if (type === 0x0a) for (let i = 2; i < data.length; i += 2) out.groups.push(name(data.readUInt16BE(i)));
    if (type === 0x33) {
      for (let i = 2; i < data.length; i += 4 + data.readUInt16BE(i + 2))
        out.shares.push(name(data.readUInt16BE(i)));
    }
  }
  return out;
}

let ca: KeyPairPem;
let serving: KeyPairPem;
const closers: (() => void)[] = [];
beforeAll(async () => {
  ca = await createCA({ commonName: 'key share CA' });
  serving = await issueCertificate(ca, { commonName: 'db', ipAddresses: ['127.0.0.1'], usage: 'server' });
});
afterEach(() => {
  closers.splice(0).forEach((close) => close());
  vi.restoreAllMocks();
});

/** A backend address whose TLS server can be swapped (an upgrade), recording each first ClientHello. */
async function backend(groups: string | undefined) {
  let tls = tlsServer(groups);
  const hellos: { groups: string[]; shares: string[] }[] = [];
  const front: Server = createServer((client: Socket) => {
    client.once('data', (hello: Buffer) => {
      hellos.push(helloGroups(hello));
      const upstream = connect((tls.address() as AddressInfo).port, '127.0.0.1', () => {
        upstream.write(hello);
        client.pipe(upstream).pipe(client);
      });
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
    });
  });
  await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
  closers.push(() => (front.close(), tls.close()));
  const port = (front.address() as AddressInfo).port;
  return {
    port,
    hellos,
    upgrade: (to: string | undefined) => (tls.close(), (tls = tlsServer(to))),
  };
}

function tlsServer(groups: string | undefined): Server {
  const server = createTlsServer({ cert: serving.certPem, key: serving.keyPem, ecdhCurve: groups }, (s) =>
    s.end(),
  );
  server.listen(0, '127.0.0.1');
  return server;
}

/** One handshake as the engines make it; resolves to the group the server chose. */
async function handshake(shared: SecureContext, port: number): Promise<string> {
  const server = `127.0.0.1:${port}`;
  const offered = contextFor(shared, server);
  const socket: TLSSocket = tlsConnect({ host: '127.0.0.1', port, secureContext: offered });
  await new Promise((resolve, reject) => socket.once('secureConnect', resolve).once('error', reject));
  noteKeyExchange(shared, server, offered, socket);
  const { name } = socket.getEphemeralKeyInfo() as { name: string };
  socket.destroy();
  return name;
}

describe.skipIf(!HYBRID_KEY_SHARES)('backend key shares', () => {
  const shared = () => withSharedContext({ ca: ca.certPem }).secureContext!;

  it('offers a server that chose X25519 one X25519 share, still listing the hybrid group first', async () => {
    const db = await backend('X25519:P-256'); // as OpenSSL 3.0 (PostgreSQL 15, Redis 7 on Debian 12)
    expect(await handshake(shared(), db.port)).toBe('X25519');
    expect(await handshake(shared(), db.port)).toBe('X25519');
    expect(await handshake(shared(), db.port)).toBe('X25519');
    expect(db.hellos.map((h) => h.shares)).toEqual([[HYBRID, 'X25519'], ['X25519'], ['X25519']]);
    expect(db.hellos.every((h) => h.groups[0] === HYBRID && h.groups.includes('X25519'))).toBe(true);
  });

  it('stays post-quantum with a server that supports it, also once it was learnt as classical', async () => {
    const db = await backend(undefined); // OpenSSL 3.5's defaults
    expect(await handshake(shared(), db.port)).toBe(HYBRID);
    expect(await handshake(shared(), db.port)).toBe(HYBRID);
    db.upgrade('X25519'); // downgraded...
    expect(await handshake(shared(), db.port)).toBe('X25519');
    db.upgrade(undefined); // ...and upgraded again: it asks for the hybrid share it prefers
    expect(await handshake(shared(), db.port)).toBe(HYBRID);
    expect(await handshake(shared(), db.port)).toBe(HYBRID);
    expect(db.hellos.map((h) => h.shares)).toEqual([
      [HYBRID, 'X25519'],
      [HYBRID, 'X25519'],
      [HYBRID, 'X25519'],
      ['X25519'], // answered with a HelloRetryRequest for the hybrid group
      [HYBRID, 'X25519'],
    ]);
  });

  it('offers the hybrid share again a minute later, and to every other server meanwhile', async () => {
    const db = await backend('X25519');
    const other = await backend(undefined);
    expect(await handshake(shared(), db.port)).toBe('X25519');
    expect(await handshake(shared(), other.port)).toBe(HYBRID);
    const now = Date.now();
    vi.spyOn(Date, 'now').mockReturnValue(now + 61_000);
    expect(await handshake(shared(), db.port)).toBe('X25519');
    expect(db.hellos.map((h) => h.shares)).toEqual([
      [HYBRID, 'X25519'],
      [HYBRID, 'X25519'],
    ]);
    expect(other.hellos.map((h) => h.shares)).toEqual([[HYBRID, 'X25519']]);
  });
});
