// SCRAM-SHA-256 for the agent's backend login (RFC 5802, RFC 7677), with tls-server-end-point channel
// binding over TLS (SCRAM-SHA-256-PLUS). The client-first message and the check of the server's final
// signature come from the `pg` driver; the client proof is computed here, so that the derived keys can be
// cached. PBKDF2 (4096 iterations or more) is most of a login's CPU, and every login of one database user
// runs it on the same password, salt and iteration count: like pgbouncer, the agent keeps ClientKey,
// StoredKey and ServerKey per (password, salt, iterations) in a small LRU. Those keys log in as the user
// on that server, exactly like the password: they are never logged, exposed or written anywhere.
import { createHash, createHmac, pbkdf2, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import type { TLSSocket } from 'node:tls';
import { promisify } from 'node:util';

/** pg's SCRAM session: the fields this module reads and sets are the ones pg's own steps use. */
export interface ScramSession {
  mechanism: string;
  clientNonce: string;
  response: string;
  message: string;
  serverSignature?: string;
}

interface PgSasl {
  startSession(mechanisms: string[], stream?: TLSSocket): ScramSession;
  finalizeSession(session: ScramSession, serverData: string): void;
}

interface PgCertSignatures {
  signatureAlgorithmHashFromCertificate(der: Buffer): string;
}

const require = createRequire(import.meta.url);
const pgSasl = require('pg/lib/crypto/sasl.js') as PgSasl;
const pgCert = require('pg/lib/crypto/cert-signatures.js') as PgCertSignatures;

/** A server asking for more is refused (pg's default): a hostile server cannot make each login cost seconds. */
const MAX_ITERATIONS = 100_000;

export interface ScramKeys {
  clientKey: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

export type DeriveSaltedPassword = (password: string, salt: Buffer, iterations: number) => Promise<Buffer>;

const pbkdf2Async = promisify(pbkdf2);
const pbkdf2Sha256: DeriveSaltedPassword = (password, salt, iterations) =>
  pbkdf2Async(saslprep(password), salt, iterations, 32, 'sha256');

/**
 * Derived keys by (password, salt, iterations), least recently used first out. Entries are keyed by an
 * HMAC under a random per-process key, so the map holds no plain digest of a password. Concurrent first
 * logins share one derivation.
 */
export class ScramKeyCache {
  private readonly entries = new Map<string, Promise<ScramKeys>>();
  private readonly mapKey = randomBytes(32);

  constructor(
    private readonly maxEntries = 256,
    private readonly derive: DeriveSaltedPassword = pbkdf2Sha256,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  keys(password: string, salt: Buffer, iterations: number): Promise<ScramKeys> {
    const id = createHmac('sha256', this.mapKey)
      .update(JSON.stringify([password, salt.toString('base64'), iterations]))
      .digest('base64');
    let keys = this.entries.get(id);
    if (keys) {
      this.entries.delete(id); // re-inserted below: most recently used last
    } else {
      const derived = this.derive(password, salt, iterations).then(keysFrom);
      derived.catch(() => this.entries.get(id) === derived && this.entries.delete(id));
      keys = derived;
    }
    this.entries.set(id, keys);
    if (this.entries.size > this.maxEntries) this.entries.delete(this.entries.keys().next().value!);
    return keys;
  }
}

function keysFrom(saltedPassword: Buffer): ScramKeys {
  const clientKey = hmac(saltedPassword, 'Client Key');
  return {
    clientKey,
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: hmac(saltedPassword, 'Server Key'),
  };
}

const processKeys = new ScramKeyCache();

/** SASLInitialResponse: SCRAM-SHA-256-PLUS when the server offers it over TLS. */
export function startScram(mechanisms: string[], tls: TLSSocket | undefined): ScramSession {
  return pgSasl.startSession(mechanisms, tls);
}

/** Answers the server-first message: sets `session.response` (client-final) and the expected signature. */
export async function continueScram(
  session: ScramSession,
  password: string,
  serverFirst: string,
  tls: TLSSocket | undefined,
  cache: ScramKeyCache = processKeys,
): Promise<void> {
  if (session.message !== 'SASLInitialResponse') throw scramError('server-first message out of order');
  if (password === '') throw scramError('the password is empty');
  const { nonce, salt, iterations } = parseServerFirst(serverFirst, session.clientNonce);
  const withoutProof = `c=${channelBinding(session.mechanism, tls)},r=${nonce}`;
  const authMessage = `n=*,r=${session.clientNonce},${serverFirst},${withoutProof}`;
  const keys = await cache.keys(password, salt, iterations);
  const proof = hmac(keys.storedKey, authMessage);
  for (let i = 0; i < proof.length; i++) proof[i]! ^= keys.clientKey[i]!;
  session.message = 'SASLResponse';
  session.serverSignature = hmac(keys.serverKey, authMessage).toString('base64');
  session.response = `${withoutProof},p=${proof.toString('base64')}`;
}

/** Checks the server's signature: proof that the server knows the password's verifier too. */
export function finishScram(session: ScramSession, serverFinal: string): void {
  pgSasl.finalizeSession(session, serverFinal);
}

function parseServerFirst(
  data: string,
  clientNonce: string,
): { nonce: string; salt: Buffer; iterations: number } {
  const attrs = new Map(data.split(',').map((pair) => [pair.slice(0, 2), pair.slice(2)]));
  const nonce = attrs.get('r=') ?? '';
  const salt = attrs.get('s=') ?? '';
  const iterations = attrs.get('i=') ?? '';
  if (!/^[\x21-\x2b\x2d-\x7e]+$/.test(nonce)) throw scramError('missing or invalid nonce');
  if (!nonce.startsWith(clientNonce) || nonce.length === clientNonce.length) {
    throw scramError('the server nonce does not extend the client nonce');
  }
  if (salt === '' || !/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(salt)) {
    throw scramError('missing or invalid salt');
  }
  if (!/^[1-9][0-9]{0,8}$/.test(iterations)) throw scramError('missing or invalid iteration count');
  const count = Number(iterations);
  if (count > MAX_ITERATIONS) {
    throw scramError(`iteration count ${count} exceeds the agent's limit of ${MAX_ITERATIONS}`);
  }
  return { nonce, salt: Buffer.from(salt, 'base64'), iterations: count };
}

/**
 * The last server certificate's `c=` attribute for -PLUS: a server presents the same certificate on
 * every login, so each login compares the DER instead of parsing and hashing it again.
 */
let lastBinding: { der: Buffer; value: string } | undefined;

/**
 * Each backend socket's `c=` attribute, from the certificate Node read for its identity check: reading
 * it again from the socket builds another copy of the certificate (tens of µs per login).
 */
const bindings = new WeakMap<TLSSocket, string>();

/** Called with the server certificate Node checked on this socket's handshake; never throws. */
export function noteServerCertificate(tls: TLSSocket, der: Buffer): void {
  try {
    bindings.set(tls, endPointBinding(der));
  } catch {
    // A certificate pg cannot read: channelBinding reads it again, and the login reports the error.
  }
}

/** The `c=` attribute: the GS2 header, plus the server certificate's hash for -PLUS (RFC 5929). */
function channelBinding(mechanism: string, tls: TLSSocket | undefined): string {
  if (mechanism !== 'SCRAM-SHA-256-PLUS') return tls ? 'eSws' : 'biws'; // "y,," / "n,,"
  const noted = bindings.get(tls!);
  if (noted !== undefined) return noted;
  // No identity check ran (spec.tls.mode insecure with an unverified chain), or it could not be read.
  return endPointBinding(tls!.getPeerX509Certificate()!.raw);
}

function endPointBinding(der: Buffer): string {
  if (lastBinding?.der.equals(der)) return lastBinding.value;
  let hash = pgCert.signatureAlgorithmHashFromCertificate(der);
  if (hash === 'MD5' || hash === 'SHA-1') hash = 'SHA-256';
  const data = Buffer.concat([
    Buffer.from('p=tls-server-end-point,,'),
    createHash(hash).update(der).digest(),
  ]);
  lastBinding = { der, value: data.toString('base64') };
  return lastBinding.value;
}

function hmac(key: Buffer, text: string): Buffer {
  return createHmac('sha256', key).update(text).digest();
}

/** RFC 4013 SASLprep as PostgreSQL and libpq apply it: the steps that change the bytes. */
function saslprep(password: string): string {
  return password
    .replace(/[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g, ' ')
    .replace(/\u00AD|\u034F|\u1806|[\u180B-\u180D]|\u200C|\u200D|\u2060|[\uFE00-\uFE0F]|\uFEFF/g, '')
    .normalize('NFKC');
}

function scramError(problem: string): Error {
  return new Error(`SASL: ${problem}`);
}
