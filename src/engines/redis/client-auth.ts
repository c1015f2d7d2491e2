// The client's AUTH and HELLO, read the way Redis reads them, and who the client is: the client
// certificate (CN = user, O = groups) or, without one, a projected ServiceAccount token sent as the
// AUTH password and checked by the TokenVerifier.
import type { Identity, TokenVerifier } from '../../authn/identity.js';
import { looksLikeToken } from '../../authn/identity.js';
import { DrawbridgeError, errorMessage } from '../../errors.js';
import { lowerAscii } from './command-name.js';
import type { RedisCommand } from './parser.js';
import { RedisReplyError } from './router.js';

export interface AuthRequest {
  /** Database user; `AUTH password` means `default`. */
  user: string;
  password: string;
}

export interface HelloRequest {
  /** Undefined for a bare `HELLO`. */
  protover?: number;
  auth?: AuthRequest;
  setname?: Buffer;
}

export function parseAuth(cmd: RedisCommand): AuthRequest | RedisReplyError {
  const a = cmd.args;
  if (a.length === 2) return { user: 'default', password: a[1]!.toString('utf8') };
  if (a.length === 3) return { user: a[1]!.toString('utf8'), password: a[2]!.toString('utf8') };
  return new RedisReplyError('ERR', "wrong number of arguments for 'auth' command");
}

/** HELLO [protover [AUTH username password] [SETNAME clientname]], with Redis 7's error texts. */
export function parseHello(cmd: RedisCommand): HelloRequest | RedisReplyError {
  const a = cmd.args;
  if (a.length < 2) return {};
  const text = a[1]!.toString('latin1');
  const protover = /^[0-9]{1,9}$/.test(text) ? Number(text) : NaN;
  if (Number.isNaN(protover)) {
    return new RedisReplyError('ERR', 'Protocol version is not an integer or out of range');
  }
  const req: HelloRequest = { protover };
  for (let i = 2; i < a.length; i++) {
    const opt = lowerAscii(a[i]!);
    if (opt === 'auth' && i + 2 < a.length) {
      req.auth = { user: a[i + 1]!.toString('utf8'), password: a[i + 2]!.toString('utf8') };
      i += 2;
    } else if (opt === 'setname' && i + 1 < a.length) {
      req.setname = a[++i];
    } else {
      return new RedisReplyError('ERR', `Syntax error in HELLO option '${a[i]!.toString('utf8')}'`);
    }
  }
  return req;
}

/**
 * Who sent this AUTH: the certificate identity when the client presented one (its password then
 * only matters for passthrough), else the ServiceAccount token in the password.
 */
export async function authIdentity(
  certificate: Identity | undefined,
  password: string,
  verifier: TokenVerifier | undefined,
): Promise<Identity> {
  if (certificate) return certificate;
  if (!looksLikeToken(password)) {
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      'no client certificate was presented and the AUTH password is not a ServiceAccount token',
      'connect with the certificate from kubectl db login, or AUTH <db-user> <projected token>',
    );
  }
  if (!verifier) {
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      'this agent does not accept ServiceAccount tokens (it runs outside Kubernetes)',
      'connect with a client certificate issued by the agent client CA',
    );
  }
  try {
    return await verifier.verify(password);
  } catch (err) {
    if (err instanceof DrawbridgeError) throw err;
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      `the ServiceAccount token was not accepted: ${errorMessage(err)}`,
      "mount a fresh projected token with the Database's audience, drawbridge.dev/<namespace>/<database>",
    );
  }
}
