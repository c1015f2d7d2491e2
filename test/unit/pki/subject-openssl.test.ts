// Differential test of who a certificate names: for thousands of random subjects (test/fuzz/der-subject.ts),
// what the agent reads (certificateSubject) and what the CSR signer reads (parseCsr) must be exactly
// what OpenSSL, which verified the same bytes, reads — the one CN, the Os in order — or a refusal.
// A CA the agent trusts (clientCAFile) may issue any subject; anyone may submit any CSR.
import { X509Certificate, generateKeyPairSync } from 'node:crypto';
import { createServer } from 'node:net';
import { type TLSSocket, connect } from 'node:tls';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { acceptTls, certificateIdentity, serverContextFromFiles } from '../../../src/agent/tls.js';
import { identityFromCertificate } from '../../../src/authn/identity.js';
import { isDrawbridgeError } from '../../../src/errors.js';
import { parseCsr } from '../../../src/pki/ca.js';
import { type Subject, certificateSubject } from '../../../src/pki/subject-der.js';
import {
  FuzzCa,
  type OpenSslEntry,
  Rng,
  SERVER_AUTH,
  STRING_TAGS,
  csrPem,
  der,
  opensslRdns,
  randomName,
} from '../../fuzz/der-subject.js';

const CASES = 3000;
const ca = new FuzzCa();
const leaf = generateKeyPairSync('ec', { namedCurve: 'P-256' });

/** The subject OpenSSL's reading gives under the documented rule: one CN, CN and O each an RDN alone. */
function byTheRules(rdns: OpenSslEntry[][]): Subject | undefined {
  const names: string[] = [];
  const organizations: string[] = [];
  for (const rdn of rdns) {
    for (const { type, value } of rdn) {
      if (type !== 'CN' && type !== 'O') continue;
      if (rdn.length !== 1) return undefined;
      (type === 'CN' ? names : organizations).push(value);
    }
  }
  return names.length === 1 ? { commonName: names[0]!, organizations } : undefined;
}

const list = (v: unknown) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

function read<T>(fn: () => T): T | Error {
  try {
    return fn();
  } catch (err) {
    return err as Error;
  }
}

/** A refusal must be the reader's own, naming what is wrong: never a TypeError or RangeError. */
function expectClearRefusal(err: Error, what: string): void {
  expect(isDrawbridgeError(err) && err.code, `${what}: ${err.stack}`).toBe('AUTHN_FAILED');
  expect(err.message, what).toMatch(/^certificate subject: /);
}

/**
 * Asserts that what our reader made of `cert` is what OpenSSL read in it once verified, or a clear
 * refusal. What OpenSSL refuses never gets past the handshake, so there is nothing to compare then.
 * Returns which of these it was.
 */
function expectOpenSslAgrees(
  ours: Subject | Error,
  cert: Buffer,
  what: string,
): 'accepted' | 'refused' | 'opensslRefused' {
  if (ours instanceof Error) expectClearRefusal(ours, what);
  const x = read(() => new X509Certificate(cert));
  if (x instanceof Error) return 'opensslRefused';
  expect(x.verify(ca.publicKey), what).toBe(true);
  if (ours instanceof Error) return 'refused';
  expect(ours, what).toEqual(byTheRules(opensslRdns(x)));
  // The same values by a second OpenSSL path (ASN1_STRING_to_UTF8, no escaping): checks the unescaping.
  // Node 20 gives no object at all when some other attribute is not a string.
  const legacy = x.toLegacyObject().subject as Record<string, unknown> | undefined;
  if (legacy)
    expect([list(legacy.CN), list(legacy.O)], what).toEqual([[ours.commonName], ours.organizations]);
  return 'accepted';
}

describe('subjects read as OpenSSL reads them (differential, fixed seed)', () => {
  let generated: { name: Buffer; cert: Buffer }[] | undefined;
  /** The random subjects, each in a certificate: the same ones on every run and for both readers. */
  const cases = () =>
    (generated ??= (() => {
      const r = new Rng(0x5eed_0001);
      return Array.from({ length: CASES }, () => {
        const name = randomName(r);
        return { name, cert: ca.certificate(name, leaf.publicKey) };
      });
    })());

  it(`certificateSubject: ${CASES} random subjects in certificates OpenSSL verified`, () => {
    const seen = { accepted: 0, refused: 0, opensslRefused: 0, opensslOnly: 0 };
    for (const [i, { name, cert }] of cases().entries()) {
      const what = `case ${i}, Name ${name.toString('hex')}`;
      const ours = read(() => certificateSubject(cert));
      const outcome = expectOpenSslAgrees(ours, cert, what);
      seen[outcome]++;
      if (outcome === 'refused' && byTheRules(opensslRdns(new X509Certificate(cert)))) seen.opensslOnly++;
      if (outcome !== 'accepted') continue;
      const { commonName: user, organizations: groups } = ours as Subject;
      const peer = new X509Certificate(cert);
      if (user) expect(identityFromCertificate(peer), what).toMatchObject({ user, groups });
      else expect(() => identityFromCertificate(peer), what).toThrow(/empty common name/);
    }
    // The generator reaches every side, including subjects OpenSSL reads but we refuse (T61, BER forms…).
    expect(seen.accepted).toBeGreaterThan(CASES / 10);
    expect(seen.refused).toBeGreaterThan(CASES / 10);
    expect(seen.opensslRefused).toBeGreaterThan(CASES / 100);
    expect(seen.opensslOnly).toBeGreaterThan(0);
  });

  it('reads a subject of 10,000 RDNs, and skips an OU nested 20,000 deep, in one pass as OpenSSL does', () => {
    const atv = (oid: number[], value: Buffer) => der(0x31, der(0x30, der(0x06, oid), value));
    let deep = der(STRING_TAGS.UTF8String, 'x');
    for (let i = 0; i < 20_000; i++) deep = der(0x30, deep);
    const groups = Array.from({ length: 10_000 }, (_, i) => atv([0x55, 4, 10], der(0x0c, `g${i}`)));
    const name = der(0x30, atv([0x55, 4, 3], der(0x0c, 'alice')), atv([0x55, 4, 11], deep), ...groups);
    const cert = ca.certificate(name, leaf.publicKey);
    const ours = certificateSubject(cert);
    expect(ours.organizations).toHaveLength(10_000);
    expect(expectOpenSslAgrees(ours, cert, 'huge subject')).toBe('accepted');
  });

  it('parseCsr: the same subjects in signed CSRs read exactly as in the certificates', () => {
    for (const [i, { name, cert }] of cases().entries()) {
      const what = `case ${i}, Name ${name.toString('hex')}`;
      const fromCsr = read(() => parseCsr(csrPem(name, leaf)));
      const fromCert = read(() => certificateSubject(cert));
      const outcome = (s: Subject | Error) => (s instanceof Error ? 'refused' : s);
      expect(outcome(fromCsr), `${what}: the signer reads it otherwise than the agent`).toEqual(
        outcome(fromCert),
      );
      expectOpenSslAgrees(fromCsr, cert, what);
    }
  });
});

describe('the agent reads one user and their groups from what its TLS handshake lets through', () => {
  const dir = mkdtempSync(join(tmpdir(), 'subject-openssl-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const rdn = (...atvs: [number[], number, number[] | string][]) =>
    der(0x31, ...atvs.map(([oid, tag, value]) => der(0x30, der(0x06, oid), der(tag, value))));
  const [CN, O, OU] = [
    [0x55, 4, 3],
    [0x55, 4, 10],
    [0x55, 4, 11],
  ];
  const { UTF8String: UTF8, TeletexString: T61 } = STRING_TAGS;
  const alice = rdn([CN, UTF8, 'alice']);

  const files = {
    certFile: join(dir, 'agent.crt'),
    keyFile: join(dir, 'agent.key'),
    clientCAFile: join(dir, 'ca.crt'),
  };
  const agent = ca.leaf(der(0x30, rdn([CN, UTF8, 'agent'])), [SERVER_AUTH]);
  writeFileSync(files.certFile, agent.certPem);
  writeFileSync(files.keyFile, agent.keyPem);
  writeFileSync(files.clientCAFile, ca.certPem);
  const context = serverContextFromFiles(files);

  /** The identity (or refusal) the agent's TLS layer gives a client presenting `client`. */
  async function handshake(
    client: { certPem: string; keyPem: string },
    later?: (tls: TLSSocket) => void,
  ): Promise<unknown> {
    let result: (seen: unknown) => void;
    const seen = new Promise((resolve) => (result = resolve));
    const server = createServer((socket) => {
      const tls = acceptTls(socket, context);
      tls.on('error', () => {});
      tls.once('secure', () => {
        later?.(tls);
        result(read(() => certificateIdentity(tls)));
        tls.end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    const c = connect({
      port,
      host: '127.0.0.1',
      cert: client.certPem,
      key: client.keyPem,
      rejectUnauthorized: false,
    });
    c.on('error', () => {});
    c.resume();
    try {
      const got = await seen;
      return got instanceof Error ? got.message : got;
    } finally {
      c.destroy();
      server.close();
    }
  }

  it.each<[string, Buffer, unknown]>([
    [
      'CN, O and OU: the user, the O as group, OU ignored',
      der(0x30, alice, rdn([O, UTF8, 'devs']), rdn([OU, UTF8, 'system:masters'])),
      { user: 'alice', groups: ['devs'], source: 'certificate' },
    ],
    [
      'two CNs (OpenSSL lists both)',
      der(0x30, alice, rdn([CN, UTF8, 'bob'])),
      /exactly one common name .*has 2/,
    ],
    [
      'a CN sharing its RDN with an O',
      der(0x30, rdn([CN, UTF8, 'alice'], [O, UTF8, 'system:masters'])),
      /RDN of their own/,
    ],
    [
      'an O sharing its RDN with an OU',
      der(0x30, alice, rdn([OU, UTF8, 'x'], [O, UTF8, 'system:masters'])),
      /RDN of their own/,
    ],
    [
      'a T61String CN (Latin-1 to OpenSSL)',
      der(0x30, rdn([CN, T61, [0x61, 0xe9]])),
      /not a UTF8, Printable, BMP or Universal/,
    ],
    // OpenSSL reads both as the UTF8String "alice": DER has neither form.
    [
      'a CN tag in high-tag-number form',
      der(0x30, der(0x31, der(0x30, der(0x06, CN), [0x1f, 0x0c, 5], 'alice'))),
      /not a DER Name/,
    ],
    [
      'a constructed UTF8String CN',
      der(0x30, der(0x31, der(0x30, der(0x06, CN), der(0x2c, der(UTF8, 'al'), der(UTF8, 'ice'))))),
      /not a UTF8/,
    ],
  ])('%s', async (_what, subject, expected) => {
    const got = await handshake(ca.leaf(subject));
    if (expected instanceof RegExp) expect(got).toMatch(expected);
    else expect(got).toMatchObject(expected as object);
  });

  it('reads the identity from the certificate the handshake checked, whatever the socket says later', async () => {
    // What a TLS 1.2 renegotiation did (refused since): the socket reports another certificate, from
    // a CA nobody trusts, after the chain check of the first.
    const stranger = new FuzzCa().leaf(der(0x30, rdn([CN, UTF8, 'mallory'])));
    const swapped = new X509Certificate(stranger.certPem);
    const got = await handshake(ca.leaf(der(0x30, alice)), (tls) => {
      tls.getPeerX509Certificate = () => swapped;
    });
    expect(got).toMatchObject({ user: 'alice' });
  });

  it('refuses a certificate for servers only (no clientAuth) at the handshake', async () => {
    expect(await handshake(ca.leaf(der(0x30, alice), [SERVER_AUTH]))).toMatch(
      /client certificate rejected: /,
    );
  });
});
