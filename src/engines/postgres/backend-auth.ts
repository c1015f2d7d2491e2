// The agent logs in to the backend as the database user: SCRAM-SHA-256 (with channel binding when the
// server offers it over TLS), md5 or cleartext with a password credential; nothing extra with a client
// certificate (the backend's pg_hba.conf `cert` method checked it during the TLS handshake). SCRAM is in
// scram.ts (on node-postgres's implementation, with derived keys cached); the md5 digest is pg's.
import { createRequire } from 'node:module';
import type { TLSSocket } from 'node:tls';
import { DrawbridgeError } from '../../errors.js';
import type { BackendCredential } from '../../agent/credentials.js';
import { decodeAuth, decodeErrorFields } from './decoders.js';
import { BackendCode } from './messages.js';
import { BACKEND_LIMITS } from './parser.js';
import { type ScramSession, continueScram, finishScram, startScram } from './scram.js';
import { passwordMessage, saslInitialResponse, saslResponse } from './serializer.js';
import type { Wire } from './wire.js';

interface PgCryptoUtils {
  postgresMd5PasswordHash(user: string, password: string, salt: Buffer): Promise<string>;
}

const require = createRequire(import.meta.url);
const pgCrypto = require('pg/lib/crypto/utils.js') as PgCryptoUtils;

/** SQLSTATE invalid_password: the one failure a fallback (previous) password may fix. */
export const INVALID_PASSWORD = '28P01';

/** The backend refused the agent's login; `sqlState` is the backend's own code when it sent one. */
export class BackendAuthError extends DrawbridgeError {
  constructor(
    readonly sqlState: string | undefined,
    message: string,
    hint: string,
  ) {
    super('BACKEND_AUTH_FAILED', message, hint);
  }
}

/**
 * Runs the backend's authentication exchange until AuthenticationOk. `password` is the one to try on
 * this connection (the credential's current or a fallback password); never logged, never in errors.
 */
export async function authenticate(
  wire: Wire,
  cred: BackendCredential,
  password: string | undefined,
  tls: TLSSocket | undefined,
  secretName: string,
): Promise<void> {
  let session: ScramSession | undefined;
  const needPassword = (): string => {
    if (password !== undefined) return password;
    throw new BackendAuthError(
      undefined,
      `the database asked for a password for user "${cred.user}", but the Database authenticates with a client certificate`,
      'allow this user with the `cert` method in the server pg_hba.conf (hostssl ... cert), or use spec.auth.type: password',
    );
  };
  for (;;) {
    const msg = await wire.message(BACKEND_LIMITS);
    if (msg.code === BackendCode.ErrorResponse) {
      const e = decodeErrorFields(msg.body);
      throw new BackendAuthError(
        e.code,
        `the database rejected the agent's login as "${cred.user}": ${e.message ?? 'no message'}`,
        e.code === INVALID_PASSWORD
          ? `update the password for "${cred.user}" in Secret "${secretName}" (spec.auth.secretRef)`
          : (e.hint ?? 'check the database server pg_hba.conf and log for this user'),
      );
    }
    if (msg.code !== BackendCode.Authentication) continue; // NegotiateProtocolVersion, notices
    const req = decodeAuth(msg.body);
    switch (req.kind) {
      case 'ok':
        return;
      case 'cleartext':
        wire.socket.write(passwordMessage(needPassword()));
        break;
      case 'md5': {
        const digest = await pgCrypto.postgresMd5PasswordHash(cred.user, needPassword(), req.salt);
        wire.socket.write(passwordMessage(digest));
        break;
      }
      case 'sasl': {
        needPassword(); // a certificate credential has none: fail before starting the exchange
        session = await scramStep(async () => startScram(req.mechanisms, tls));
        wire.socket.write(saslInitialResponse(session.mechanism, session.response));
        break;
      }
      case 'sasl-continue': {
        const s = requireSession(session);
        await scramStep(() => continueScram(s, needPassword(), req.data, tls));
        wire.socket.write(saslResponse(s.response));
        break;
      }
      case 'sasl-final':
        await scramStep(async () => finishScram(requireSession(session), req.data));
        break;
      case 'unsupported':
        throw new BackendAuthError(
          undefined,
          `the database asked for authentication method ${req.code}, which the agent does not support`,
          'use scram-sha-256, md5, password or cert for this user in the server pg_hba.conf',
        );
    }
  }
}

function requireSession(session: ScramSession | undefined): ScramSession {
  if (session) return session;
  throw new BackendAuthError(undefined, 'the database sent a SASL message out of order', 'check the server');
}

function scramFailure(err: unknown): BackendAuthError {
  if (err instanceof BackendAuthError) return err;
  // pg's messages describe the SCRAM exchange only (nonce, signature); they never contain the password.
  const detail = err instanceof Error ? err.message : String(err);
  return new BackendAuthError(
    undefined,
    `SCRAM authentication with the database failed: ${detail}`,
    'check that the server is the expected one (verify-full TLS) and the password in the Secret is current',
  );
}

async function scramStep<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw scramFailure(err);
  }
}
