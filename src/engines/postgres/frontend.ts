// The client side of a connection, up to the point where the agent knows who is asking for what:
// encryption negotiation, the startup packet, and the person's identity.
import type { Socket } from 'node:net';
import type { SecureContext, TLSSocket } from 'node:tls';
import { acceptTls, certificateIdentity } from '../../agent/tls.js';
import { type Identity, type TokenVerifier, looksLikeToken } from '../../authn/identity.js';
import { DrawbridgeError, errorMessage } from '../../errors.js';
import { decodePassword } from './decoders.js';
import type { CancelKey } from './cancel.js';
import { PASSWORD_LIMITS } from './parser.js';
import { AUTHENTICATION_CLEARTEXT, ENCRYPTION_REFUSED, SSL_ACCEPTED } from './serializer.js';
import { Wire, ignoreError } from './wire.js';

export type ClientHello =
  | ({ kind: 'cancel'; fromPeer: boolean } & CancelKey)
  | { kind: 'startup'; tls: TLSSocket; wire: Wire; params: Map<string, string>; minor: number };

const TLS_REQUIRED_HINT =
  'connect with sslmode=require or sslmode=verify-full (kubectl db connect sets this up for you)';

/**
 * Reads packets until a TLS-protected StartupMessage, or a CancelRequest (plaintext or inside TLS).
 * `secured` gets the TLS socket as soon as the handshake is done: errors from then on go inside it.
 */
export async function negotiate(
  socket: Socket,
  context: SecureContext,
  secured: (tls: TLSSocket) => void,
): Promise<ClientHello> {
  const wire = new Wire(socket, 'client');
  for (let gssencAnswered = false; ;) {
    const packet = await wire.startup();
    switch (packet.kind) {
      case 'gssenc':
        // libpq asks for GSSAPI encryption first when it has Kerberos credentials; 'N' makes it fall back
        // to SSLRequest on the same connection. Once only, as PostgreSQL: a stream of them would queue
        // an answer each, unread, until the auth timeout (memory a stranger could grow without bound).
        if (gssencAnswered) {
          throw new DrawbridgeError(
            'PROTOCOL_ERROR',
            'the client sent GSSENCRequest twice; the agent does not offer GSSAPI encryption',
            TLS_REQUIRED_HINT,
          );
        }
        gssencAnswered = true;
        socket.write(ENCRYPTION_REFUSED);
        continue;
      case 'cancel':
        // psql 15 sends Ctrl+C's CancelRequest in plaintext on a new connection, even for a TLS session.
        wire.detach();
        return packet;
      case 'startup':
        throw new DrawbridgeError(
          'AUTHN_FAILED',
          'the Drawbridge agent accepts TLS connections only (the client sent a plaintext startup)',
          TLS_REQUIRED_HINT,
        );
      case 'ssl': {
        // Bytes sent before our 'S' would bypass TLS (CVE-2021-23214): refuse them.
        if (wire.buffered > 0) {
          throw new DrawbridgeError('PROTOCOL_ERROR', 'received unencrypted data after SSLRequest');
        }
        wire.detach();
        socket.write(SSL_ACCEPTED);
        const tls = await handshake(socket, context);
        secured(tls);
        return startupInTls(tls);
      }
    }
  }
}

function handshake(socket: Socket, context: SecureContext): Promise<TLSSocket> {
  const tls = acceptTls(socket, context);
  // The session reads remoteAddress (its audit record); Node caches it on the socket (`_peername`). Asked
  // now, before any byte, the client socket keeps one shape for life: asked later, it would change shape
  // mid-session, one more map at every inline cache of Node's stream code than a TLS server's sockets.
  void tls.remoteAddress;
  return new Promise((resolve, reject) => {
    const closed = () =>
      reject(
        new DrawbridgeError('PROTOCOL_ERROR', 'the client closed the connection during the TLS handshake'),
      );
    tls.once('secure', () => {
      tls.removeAllListeners('error');
      tls.off('close', closed);
      resolve(tls);
    });
    tls.once('error', (err) => {
      // The client has seen a TLS alert; a plaintext ErrorResponse now would only be noise to it.
      socket.destroy();
      reject(
        new DrawbridgeError(
          'AUTHN_FAILED',
          `TLS handshake with the client failed: ${errorMessage(err)}`,
          TLS_REQUIRED_HINT,
        ),
      );
    });
    tls.once('close', closed);
  });
}

async function startupInTls(tls: TLSSocket): Promise<ClientHello> {
  // Socket errors after the handshake surface as 'close' to the reader and the relay.
  tls.on('error', ignoreError);
  const wire = new Wire(tls, 'client');
  const packet = await wire.startup();
  if (packet.kind === 'cancel') {
    wire.detach();
    return packet;
  }
  if (packet.kind !== 'startup') {
    throw new DrawbridgeError('PROTOCOL_ERROR', `unexpected ${packet.kind} request inside TLS`);
  }
  return { kind: 'startup', tls, wire, params: packet.params, minor: packet.minor };
}

/**
 * Who is connecting: the client certificate's subject, or else a ServiceAccount token the client sends
 * as its password (asked for in cleartext — the connection is already TLS).
 */
export async function identify(
  tls: TLSSocket,
  wire: Wire,
  verifier: TokenVerifier | undefined,
): Promise<Identity> {
  const fromCertificate = certificateIdentity(tls);
  if (fromCertificate) return fromCertificate;
  if (!verifier) {
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      'no client certificate was presented, and this agent accepts client certificates only',
      'log in with kubectl db login NAME and connect with sslcert and sslkey (kubectl db connect does this)',
    );
  }
  tls.write(AUTHENTICATION_CLEARTEXT);
  const token = decodePassword((await wire.message(PASSWORD_LIMITS)).body);
  if (!looksLikeToken(token)) {
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      'no client certificate was presented, and the password is not a ServiceAccount token',
      'mount a projected ServiceAccount token (audience drawbridge.dev/<namespace>/<database>) and send it as the password',
    );
  }
  return verifier.verify(token);
}

export interface StartupRequest {
  dbUser: string;
  dbName: string;
  /** Client parameters passed on to the backend (application_name, options, client_encoding, ...). */
  forward: [string, string][];
  /** `_pq_.` protocol extensions the agent does not implement, reported back to the client. */
  unsupportedOptions: string[];
  /** Set when a startup setting would change the role: the denial to send (and audit). */
  roleChange?: DrawbridgeError;
}

export function startupRequest(params: Map<string, string>): StartupRequest {
  const dbUser = params.get('user');
  if (!dbUser) {
    throw new DrawbridgeError(
      'AUTHN_FAILED',
      'no PostgreSQL user name specified in startup packet',
      'pass the database user, e.g. psql "user=alice ..." or -U alice',
    );
  }
  const replication = params.get('replication');
  if (replication !== undefined && !['false', 'off', 'no', '0'].includes(replication.toLowerCase())) {
    throw new DrawbridgeError(
      'ACCESS_DENIED',
      'replication connections are not available through the Drawbridge agent',
      'connect without the replication parameter',
    );
  }
  const forward: [string, string][] = [];
  const unsupportedOptions: string[] = [];
  let roleChange: DrawbridgeError | undefined;
  for (const [name, value] of params) {
    roleChange ??= roleChangeRefusal(name, value);
    if (name.startsWith('_pq_.')) unsupportedOptions.push(name);
    else if (name !== 'user' && name !== 'database' && name !== 'replication') forward.push([name, value]);
  }
  return { dbUser, dbName: params.get('database') || dbUser, forward, unsupportedOptions, roleChange };
}

/** Settings that would make the session run as another role than the one the agent logged in as. */
const ROLE_SETTINGS = new Set(['role', 'session_authorization', 'session-authorization']);
/** One `options` word that sets one: `-c role=x`'s second word, `-crole=x`, `--role=x`, `-Fc role=x`. */
const ROLE_OPTION = /^(?:-[A-Za-z]*c|--)?(?:role|session[_-]authorization)=/i;

/**
 * The denial for a startup parameter or `options` word that changes the role. `SET ROLE` and `SET
 * SESSION AUTHORIZATION` inside the session stay possible: the server allows them only for roles the
 * backend user is a member of (or for superusers), so its grants decide, and the statements are audited.
 */
function roleChangeRefusal(name: string, value: string): DrawbridgeError | undefined {
  const words = name === 'options' ? splitOptions(value) : [];
  const word = ROLE_SETTINGS.has(name.toLowerCase())
    ? `${name}=${value}`
    : words.find((w) => ROLE_OPTION.test(w));
  if (word === undefined) return undefined;
  return new DrawbridgeError(
    'ACCESS_DENIED',
    `the startup setting "${word}" changes the role, which the Drawbridge agent does not allow; ` +
      'use SET ROLE inside the session instead (the server allows it only for roles the database user is a member of)',
    'connect without role or session_authorization in options or startup parameters',
  );
}

/** The words of an `options` value as PostgreSQL splits them (whitespace separates, backslash escapes). */
export function splitOptions(options: string): string[] {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < options.length; i++) {
    const c = options[i]!;
    if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === '\\' && i + 1 < options.length) word += options[++i];
    else word += c;
  }
  if (inWord) words.push(word);
  return words;
}
