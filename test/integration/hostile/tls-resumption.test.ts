/**
 * TLS session resumption against the real agent and PostgreSQL: a resumed handshake carries no client
 * certificate (the server trusts the one from the original session), so the agent must never resume.
 * An attacker holding a session ticket from alice's connection (a stolen or replayed ticket) offers it
 * without a certificate, or with mallory's (a person without access to alice's database): the handshake
 * is a full one, and the session is refused for the certificate actually presented, in TLS 1.3 and 1.2.
 */
import { connect as tcpConnect } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeErrorFields } from '../../../src/engines/postgres/decoders.js';
import { BACKEND_LIMITS, HandshakeBuffer } from '../../../src/engines/postgres/parser.js';
import { SSL_REQUEST, startupMessage } from '../../../src/engines/postgres/serializer.js';
import { type Fixture, type Person, startFixture } from '../postgres/fixture.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
}, 60_000);
afterAll(() => f?.stop());

interface Attempt {
  /** The handshake resumed an earlier session. */
  reused: boolean;
  /** Session tickets the agent sent. */
  tickets: Buffer[];
  /** What the agent answered the startup packet: 'ready' (a session), or its error message. */
  outcome: string;
}

/** SSLRequest, a TLS handshake as `who` (or with no certificate), offering `session`, then a startup as alice. */
async function attempt(who: Person | undefined, maxVersion: 'TLSv1.2' | 'TLSv1.3', session?: Buffer) {
  const raw = tcpConnect({ host: '127.0.0.1', port: f.agent.port });
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  raw.write(SSL_REQUEST);
  await new Promise((resolve) => raw.once('data', resolve));
  const tickets: Buffer[] = [];
  const tls: TLSSocket = tlsConnect({
    socket: raw,
    ca: f.ca.certPem,
    ...(who && { cert: who.certPem, key: who.keyPem }),
    servername: 'localhost',
    maxVersion,
    session,
  });
  tls.on('session', (s: Buffer) => tickets.push(s));
  tls.on('error', () => undefined);
  await new Promise((resolve) => tls.once('secureConnect', resolve));
  const reused = tls.isSessionReused();
  tls.write(
    startupMessage([
      ['user', 'alice'],
      ['database', 'orders'],
    ]),
  );
  const buffer = new HandshakeBuffer();
  const outcome = await new Promise<string>((resolve) => {
    tls.on('data', (chunk: Buffer) => {
      buffer.push(chunk);
      for (let m = buffer.message(BACKEND_LIMITS); m; m = buffer.message(BACKEND_LIMITS)) {
        if (m.code === 0x45) resolve(decodeErrorFields(m.body).message ?? 'error');
        if (m.code === 0x5a) resolve('ready');
      }
    });
    tls.once('close', () => resolve('closed'));
  });
  tls.destroy();
  return { reused, tickets, outcome } satisfies Attempt;
}

describe.each(['TLSv1.3', 'TLSv1.2'] as const)('session resumption over %s', (version) => {
  it("does not let a client resume alice's session without her certificate or with another", async () => {
    const alice = await attempt(f.people.alice, version);
    expect(alice).toMatchObject({ reused: false, outcome: 'ready' });
    // Whatever the agent handed out (TLS 1.3 tickets, a TLS 1.2 session): offered back by the attacker.
    const stolen = alice.tickets.at(-1);
    expect(stolen).toBeDefined();

    const bare = await attempt(undefined, version, stolen);
    expect(bare.reused).toBe(false);
    expect(bare.outcome).toContain('no client certificate');

    const mallory = await attempt(f.people.mallory, version, stolen);
    expect(mallory.reused).toBe(false);
    // Refused by mallory's own roles (alice's allow her), so the certificate read was mallory's.
    expect(mallory.outcome).toContain('denied: no role allows it (role "not-prod"');

    // Nor does alice herself resume: every session's certificate is checked in a full handshake.
    const again = await attempt(f.people.alice, version, stolen);
    expect(again).toMatchObject({ reused: false, outcome: 'ready' });
  });
});
