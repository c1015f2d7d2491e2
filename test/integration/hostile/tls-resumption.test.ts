/**
 * TLS session resumption against the real agent and PostgreSQL: a resumed handshake carries no client
 * certificate (the server trusts the one from the original session), so the agent must never resume.
 * An attacker holding a session ticket from alice's connection (a stolen or replayed ticket) offers it
 * without a certificate, or with mallory's (a person without access to alice's database): the handshake
 * is a full one, and the session is refused for the certificate actually presented, in TLS 1.3 and 1.2.
 * Also on a Node whose OpenSSL predates 3.5 (the machine's Node 20, the agent run as the CLI runs it):
 * OpenSSL 3.0 failed a handshake offering a ticket with an internal_error alert, so a client caching
 * its session (JDBC, Go) could not reconnect; the agent now issues no stateless tickets.
 *
 * Nor TLS 1.2 renegotiation: the agent trusts the chain check of the first handshake and reads the
 * certificate after the startup packet, so a client that renegotiated in between could present another
 * certificate, from any CA, and be taken for its subject. Mallory (a valid certificate, no access to
 * this database) renegotiating with a self-signed "alice" (an OpenSSL client: SSL_renegotiate after
 * SSL_use_certificate_file) was logged in as alice. Every renegotiation is refused now.
 */
import { type Socket, connect as tcpConnect } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SSL_REQUEST, startupMessage } from '../../../src/engines/postgres/serializer.js';
import type { WorkersAgent } from '../../support/agent-workers.js';
import { olderNode } from '../../support/older-node.js';
import { type Fixture, type Person, startFixture, startWorkersAgentFor } from '../postgres/fixture.js';
import { pgAnswer } from './pg-answer.js';

const node = olderNode();
let f: Fixture;
let older: WorkersAgent | undefined;
beforeAll(async () => {
  f = await startFixture();
  if (node) older = await startWorkersAgentFor(f, 1, node);
}, 60_000);
afterAll(async () => {
  await older?.stop();
  await f?.stop();
});

/** A connection to the agent on `port` after SSLRequest and its 'S'. */
async function sslRequested(port: number): Promise<Socket> {
  const raw = tcpConnect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  raw.write(SSL_REQUEST);
  await new Promise((resolve) => raw.once('data', resolve));
  return raw;
}

/** A startup as alice to `orders`: 'ready' (a session), the agent's error message, or 'closed'. */
async function startupOutcome(tls: TLSSocket): Promise<string> {
  tls.write(
    startupMessage([
      ['user', 'alice'],
      ['database', 'orders'],
    ]),
  );
  return pgAnswer(tls, 0x5a, 'ready');
}

interface Attempt {
  /** The handshake resumed an earlier session. */
  reused: boolean;
  /** Session tickets the agent sent. */
  tickets: Buffer[];
  /** What the agent answered the startup packet: 'ready' (a session), or its error message. */
  outcome: string;
}

type Version = 'TLSv1.2' | 'TLSv1.3';

/**
 * To the agent on `port`: SSLRequest, a TLS handshake as `who` (or with no certificate), offering
 * `session`, then a startup as alice.
 */
async function attempt(port: number, who: Person | undefined, maxVersion: Version, session?: Buffer) {
  const raw = await sslRequested(port);
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
  const handshake = await new Promise<string | undefined>((resolve) => {
    tls.once('secureConnect', () => resolve(undefined));
    tls.once('error', (err) => resolve(err.message));
  });
  tls.on('error', () => undefined);
  if (handshake !== undefined) return { reused: false, tickets, outcome: `handshake failed: ${handshake}` };
  const reused = tls.isSessionReused();
  const outcome = await startupOutcome(tls);
  return { reused, tickets, outcome } satisfies Attempt;
}

/** The scenario against the agent on `port` in TLS `version`. */
async function resumptionRefused(port: number, version: Version) {
  const alice = await attempt(port, f.people.alice, version);
  expect(alice).toMatchObject({ reused: false, outcome: 'ready' });
  // Whatever the agent handed out (TLS 1.3 tickets, a TLS 1.2 session): offered back by the attacker.
  const stolen = alice.tickets.at(-1);
  expect(stolen).toBeDefined();

  const bare = await attempt(port, undefined, version, stolen);
  expect(bare.reused).toBe(false);
  expect(bare.outcome).toContain('no client certificate');

  const mallory = await attempt(port, f.people.mallory, version, stolen);
  expect(mallory.reused).toBe(false);
  // Refused by mallory's own roles (alice's allow her), so the certificate read was mallory's.
  expect(mallory.outcome).toContain('denied: no role allows it (role "not-prod"');

  // Nor does alice herself resume: every session's certificate is checked in a full handshake.
  const again = await attempt(port, f.people.alice, version, stolen);
  expect(again).toMatchObject({ reused: false, outcome: 'ready' });
}

describe.each(['TLSv1.3', 'TLSv1.2'] as const)('session resumption over %s', (version) => {
  it("does not let a client resume alice's session without her certificate or with another", () =>
    resumptionRefused(f.agent.port, version));

  it.skipIf(!node)('does the same, and lets a client offering a ticket connect, on an older OpenSSL', () =>
    resumptionRefused(older!.port, version),
  );
});

/** To the agent on `port` as `who` in TLS 1.2: a renegotiation, then a startup as alice. */
async function renegotiateThenStart(port: number, who: Person) {
  const raw = await sslRequested(port);
  const tls: TLSSocket = tlsConnect({
    socket: raw,
    ca: f.ca.certPem,
    cert: who.certPem,
    key: who.keyPem,
    servername: 'localhost',
    maxVersion: 'TLSv1.2',
  });
  await new Promise<void>((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject));
  // A refused renegotiation is an error on the socket (OpenSSL's "no renegotiation" alert), not the callback's.
  const renegotiation = await new Promise<string>((resolve) => {
    tls.once('error', (err) => resolve(`refused: ${err.message}`));
    tls.once('close', () => resolve('refused: closed'));
    if (!tls.renegotiate({}, (err) => resolve(err ? `refused: ${err.message}` : 'done'))) {
      resolve('refused before it started');
    }
  });
  tls.on('error', () => undefined);
  // Refused, the client has destroyed its socket: no startup to send.
  const outcome = tls.destroyed ? 'closed' : await startupOutcome(tls);
  return { renegotiation, outcome };
}

async function renegotiationRefused(port: number) {
  const mallory = await renegotiateThenStart(port, f.people.mallory);
  expect(mallory.renegotiation).toMatch(/no renegotiation/);
  expect(mallory.outcome).not.toBe('ready');
  // Nobody renegotiates, whoever the first certificate named.
  const alice = await renegotiateThenStart(port, f.people.alice);
  expect(alice.renegotiation).toMatch(/no renegotiation/);
}

describe('TLS 1.2 renegotiation', () => {
  it('is refused, so no client can present another certificate after the chain check', () =>
    renegotiationRefused(f.agent.port));

  it.skipIf(!node)('is refused on an older OpenSSL too', () => renegotiationRefused(older!.port));
});
