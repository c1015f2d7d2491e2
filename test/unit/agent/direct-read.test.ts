// readDirect over real TLS sockets wrapped as the agent wraps them (a net server, TLS over the accepted
// socket): what a read hands out is never written again, so chunks kept past their callback (as a
// partial frame, a write Writable holds, or AuditHold's unshift are) stay intact across many
// connections at once; backpressure and pause keep every byte, in order.
import { randomBytes } from 'node:crypto';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { TLSSocket, connect as tlsConnect, createSecureContext } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readDirect } from '../../../src/agent/direct-read.js';
import { type KeyPairPem, createCA, issueCertificate } from '../../../src/pki/ca.js';

let ca: KeyPairPem;
let serving: KeyPairPem;
const servers: Server[] = [];

beforeAll(async () => {
  ca = await createCA({ commonName: 'direct read test CA' });
  serving = await issueCertificate(ca, { commonName: 'relay', dnsNames: ['localhost'], usage: 'server' });
});
afterAll(() => servers.forEach((s) => s.close()));

/** A TLS server whose accepted sockets are handed to `onSocket` once secure, read through readDirect. */
async function listen(onSocket: (tls: TLSSocket, raw: Socket) => void): Promise<number> {
  const secureContext = createSecureContext({ cert: serving.certPem, key: serving.keyPem });
  const server = createServer((raw: Socket) => {
    const tls = new TLSSocket(raw, { isServer: true, secureContext });
    tls.on('error', () => undefined);
    tls.once('secure', () => onSocket(tls, raw));
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

async function client(port: number): Promise<TLSSocket> {
  const tls = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, servername: 'localhost' });
  await new Promise<void>((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject));
  return tls;
}

const tick = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Writes `data` in random pieces (1 B to 20 KB), now and then yielding to the event loop. */
async function writeInPieces(tls: TLSSocket, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length;) {
    const n = Math.min(data.length - at, 1 + Math.floor(Math.random() * 20_000));
    if (!tls.write(data.subarray(at, (at += n)))) await new Promise((r) => tls.once('drain', r));
    if (Math.random() < 0.3) await tick();
  }
}

function received(tls: TLSSocket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  tls.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => tls.once('end', () => resolve(Buffer.concat(chunks))));
}

describe('readDirect', () => {
  it('keeps every chunk handed out intact, 16 connections at once, each its own bytes', async () => {
    const kept = new Map<string, Promise<Buffer>>();
    const direct: boolean[] = [];
    const port = await listen((tls, raw) => {
      // Every chunk kept as handed out, no copy: a reused read buffer would be overwritten under it.
      const chunks: Buffer[] = [];
      direct.push(readDirect(tls, (c) => chunks.push(c)));
      const all = new Promise<Buffer>((resolve) => tls.once('end', () => resolve(Buffer.concat(chunks))));
      tls.once('end', () => tls.end());
      kept.set(`${raw.remotePort}`, all);
    });
    const sent = await Promise.all(
      Array.from({ length: 16 }, async () => {
        const tls = await client(port);
        const local = `${tls.localPort}`;
        const data = randomBytes(200_000 + Math.floor(Math.random() * 200_000));
        await writeInPieces(tls, data);
        tls.end();
        await new Promise((r) => tls.once('close', r));
        return { port: local, data };
      }),
    );
    expect(direct).toEqual(Array(16).fill(true));
    for (const { port: p, data } of sent) expect((await kept.get(p)!).equals(data)).toBe(true);
  });

  it('echoes through a slow reader: the source pauses on backpressure and nothing is lost', async () => {
    let pauses = 0;
    const port = await listen((tls) => {
      readDirect(tls, (chunk) => {
        // The relay's forward(): the chunk itself is written on, buffered by Writable when full.
        if (!tls.write(chunk) && !tls.isPaused()) {
          pauses++;
          tls.pause();
          tls.once('drain', () => tls.resume());
        }
      });
      tls.once('end', () => tls.end());
      tls.resume();
    });
    const tls = await client(port);
    const data = randomBytes(4 << 20);
    tls.pause(); // reads nothing for a while: the echo backs up into the relay
    const echoed = received(tls);
    await writeInPieces(tls, data);
    await new Promise((r) => setTimeout(r, 200));
    tls.resume();
    tls.end();
    expect((await echoed).equals(data)).toBe(true);
    expect(pauses).toBeGreaterThan(0);
  });

  it("keeps chunks read while paused behind a chunk put back (AuditHold's unshift), in order", async () => {
    let got: Promise<Buffer> | undefined;
    const port = await listen((tls) => {
      const chunks: Buffer[] = [];
      let holds = 0;
      readDirect(tls, (chunk) => {
        if (holds < 5) {
          holds++;
          tls.pause();
          tls.unshift(chunk);
          setTimeout(() => tls.resume(), 20);
          return;
        }
        chunks.push(chunk);
      });
      got = new Promise((resolve) => tls.once('end', () => resolve(Buffer.concat(chunks))));
      tls.once('end', () => tls.end());
      tls.resume();
    });
    const tls = await client(port);
    const data = randomBytes(1 << 20);
    // In one write: many TLS records per TCP read, so reads keep coming after the callback pauses.
    tls.end(data);
    await new Promise((r) => tls.once('close', r));
    expect((await got!).equals(data)).toBe(true);
  });

  it('ends the one connection whose callback throws', async () => {
    let closed: Promise<Error> | undefined;
    const port = await listen((tls) => {
      closed = new Promise((resolve) => tls.once('error', resolve));
      readDirect(tls, () => {
        throw new Error('malformed');
      });
      tls.resume();
    });
    const tls = await client(port);
    tls.on('error', () => undefined);
    tls.write('x');
    await new Promise((r) => tls.once('close', r));
    expect((await closed!).message).toBe('malformed');
  });
});
