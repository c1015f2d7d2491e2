// The agent's SCRAM-SHA-256 client step, checked against node-postgres's own implementation as the
// oracle (same session, same server-first message → same proof and expected server signature), and its
// derived-key cache: repeated logins skip PBKDF2, concurrent first logins share one derivation, the LRU
// stays bounded.
import { X509Certificate } from 'node:crypto';
import { createRequire } from 'node:module';
import type { TLSSocket } from 'node:tls';
import { beforeAll, describe, expect, it } from 'vitest';
import { createCA } from '../../../src/pki/ca.js';
import {
  type DeriveSaltedPassword,
  ScramKeyCache,
  type ScramSession,
  continueScram,
  finishScram,
  noteServerCertificate,
  startScram,
} from '../../../src/engines/postgres/scram.js';

const require = createRequire(import.meta.url);
const pgSasl = require('pg/lib/crypto/sasl.js') as {
  continueSession(s: ScramSession, password: string, data: string, stream?: unknown): Promise<void>;
};

let tls: TLSSocket;
let der: Buffer;
beforeAll(async () => {
  der = new X509Certificate((await createCA({ commonName: 'db server' })).certPem).raw;
  // What both implementations read from a TLS socket for tls-server-end-point channel binding.
  tls = { getPeerCertificate: () => ({ raw: der }), getPeerX509Certificate: () => ({ raw: der }) } as never;
});

const SALT = Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64');
const serverFirst = (s: ScramSession, salt = SALT, iterations = 4096) =>
  `r=${s.clientNonce}%hvYDpWUa2RaTCAf,s=${salt.toString('base64')},i=${iterations}`;

function counting(): { derive: DeriveSaltedPassword; calls: () => number } {
  let calls = 0;
  return {
    derive: async (password, salt, iterations) => {
      calls++;
      return Buffer.from(`${password}|${salt.toString('hex')}|${iterations}`.padEnd(32).slice(0, 32));
    },
    calls: () => calls,
  };
}

describe('continueScram', () => {
  it.each([
    ['plain TCP (n,,)', ['SCRAM-SHA-256'], false, 'pencil'],
    ['TLS, server without -PLUS (y,,)', ['SCRAM-SHA-256'], true, 'pencil'],
    ['TLS with channel binding (-PLUS)', ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'], true, 'pencil'],
    ['SASLprep: non-ASCII space and soft hyphen', ['SCRAM-SHA-256'], false, 'pen\u00A0ci\u00ADl'],
    ['SASLprep: NFKC', ['SCRAM-SHA-256'], false, '\u2168-ﬁ'],
  ])('answers like node-postgres: %s', async (_name, mechanisms, withTls, password) => {
    const stream = withTls ? tls : undefined;
    const ours = startScram(mechanisms, stream);
    const theirs = { ...ours };
    await continueScram(ours, password, serverFirst(ours), stream, new ScramKeyCache());
    await pgSasl.continueSession(theirs, password, serverFirst(theirs), stream);
    expect(ours.response).toBe(theirs.response);
    expect(ours.serverSignature).toBe(theirs.serverSignature);
    expect(() => finishScram(ours, `v=${theirs.serverSignature}`)).not.toThrow();
  });

  it('binds to the certificate noted during the identity check, without reading it again', async () => {
    const noted = {
      getPeerX509Certificate: () => {
        throw new Error('read again');
      },
    } as never as TLSSocket;
    noteServerCertificate(noted, der);
    const ours = startScram(['SCRAM-SHA-256-PLUS'], tls);
    const theirs = { ...ours };
    await continueScram(ours, 'pencil', serverFirst(ours), noted, new ScramKeyCache());
    await pgSasl.continueSession(theirs, 'pencil', serverFirst(theirs), tls);
    expect(ours.response).toBe(theirs.response);
  });

  it('reads the certificate when none was noted, and reports one it cannot use', async () => {
    const garbage = { getPeerX509Certificate: () => ({ raw: Buffer.from('not a certificate') }) } as never;
    noteServerCertificate(garbage, Buffer.from('not a certificate')); // must not throw
    const s = startScram(['SCRAM-SHA-256-PLUS'], tls);
    await expect(continueScram(s, 'pencil', serverFirst(s), garbage, new ScramKeyCache())).rejects.toThrow();
  });

  it('rejects a server signature that does not match', async () => {
    const s = startScram(['SCRAM-SHA-256'], undefined);
    await continueScram(s, 'pencil', serverFirst(s), undefined, new ScramKeyCache());
    expect(() => finishScram(s, 'v=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=')).toThrow(/signature/);
  });

  it.each([
    ['a nonce that does not extend ours', () => `r=other,s=${SALT.toString('base64')},i=4096`],
    ['no salt', (s: ScramSession) => `r=${s.clientNonce}x,i=4096`],
    ['a salt that is not base64', (s: ScramSession) => `r=${s.clientNonce}x,s=%%%,i=4096`],
    ['a zero iteration count', (s: ScramSession) => serverFirst(s, SALT, 0)],
    ['more iterations than the limit', (s: ScramSession) => serverFirst(s, SALT, 100_001)],
  ])('refuses a server-first message with %s', async (_name, message: (s: ScramSession) => string) => {
    const s = startScram(['SCRAM-SHA-256'], undefined);
    await expect(continueScram(s, 'pencil', message(s), undefined, new ScramKeyCache())).rejects.toThrow(
      /^SASL: /,
    );
    expect(s.message).toBe('SASLInitialResponse');
  });

  it('refuses a second server-first message', async () => {
    const s = startScram(['SCRAM-SHA-256'], undefined);
    await continueScram(s, 'pencil', serverFirst(s), undefined, new ScramKeyCache());
    await expect(continueScram(s, 'pencil', serverFirst(s), undefined)).rejects.toThrow(/out of order/);
  });
});

describe('ScramKeyCache', () => {
  const login = async (cache: ScramKeyCache, password: string, salt = SALT, iterations = 4096) => {
    const s = startScram(['SCRAM-SHA-256'], undefined);
    await continueScram(s, password, serverFirst(s, salt, iterations), undefined, cache);
    return s;
  };

  it('derives once per password, salt and iteration count', async () => {
    const c = counting();
    const cache = new ScramKeyCache(8, c.derive);
    const first = await login(cache, 'pencil');
    const again = await login(cache, 'pencil');
    expect(c.calls()).toBe(1);
    // Same keys, fresh nonces: each login still gets its own proof.
    expect(again.response).not.toBe(first.response);
    await login(cache, 'pencil', Buffer.from('another salt'));
    await login(cache, 'pencil', SALT, 8192);
    await login(cache, 'rotated password');
    expect(c.calls()).toBe(4);
    expect(cache.size).toBe(4);
  });

  it('shares one derivation between concurrent first logins', async () => {
    const c = counting();
    const cache = new ScramKeyCache(8, c.derive);
    await Promise.all(Array.from({ length: 20 }, () => login(cache, 'pencil')));
    expect(c.calls()).toBe(1);
  });

  it('keeps at most maxEntries, forgetting the least recently used', async () => {
    const c = counting();
    const cache = new ScramKeyCache(2, c.derive);
    await login(cache, 'a');
    await login(cache, 'b');
    await login(cache, 'a'); // a is now the most recently used
    await login(cache, 'c'); // evicts b
    expect(cache.size).toBe(2);
    expect(c.calls()).toBe(3);
    await login(cache, 'a');
    expect(c.calls()).toBe(3);
    await login(cache, 'b');
    expect(c.calls()).toBe(4);
  });

  it('forgets a failed derivation, so the next login tries again', async () => {
    let fail = true;
    const cache = new ScramKeyCache(8, async () => {
      if (fail) throw new Error('derivation failed');
      return Buffer.alloc(32, 1);
    });
    await expect(login(cache, 'pencil')).rejects.toThrow('derivation failed');
    expect(cache.size).toBe(0);
    fail = false;
    await expect(login(cache, 'pencil')).resolves.toMatchObject({ message: 'SASLResponse' });
  });
});
