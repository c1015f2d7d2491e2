// Which key shares a backend's ClientHello carries. Node 24's OpenSSL (3.5) sends two: the post-quantum
// hybrid X25519MLKEM768 and plain X25519. A server that cannot use the hybrid one (PostgreSQL and Redis
// on OpenSSL 3.0, as Debian 12 ships them) picks X25519, and the ML-KEM key pair (plus the hybrid's own
// X25519 pair) was made for nothing: ~55 µs of agent CPU per backend handshake, on every session's
// connect. So per server the agent remembers a verified handshake in which it offered the hybrid share
// and the server chose a classical group, and for a while offers that server a single X25519 share.
//
// Security is unchanged:
// - The supported_groups list stays the same, X25519MLKEM768 first: a server that does support it
//   answers with a HelloRetryRequest for it (OpenSSL 3.5 does, by the tuple preference of its defaults),
//   and the session is post-quantum again (and so is every next offer).
// - The choice is learnt only from a handshake that completed: in TLS 1.3 the ServerHello's group is
//   covered by the server's signature and Finished MAC, so a network attacker cannot feign it.
// - A server that was upgraded and accepts a classical share without asking for its preferred group
//   is offered the hybrid share again within REPROBE_MS.
import type { SecureContext, SecureContextOptions, TLSSocket } from 'node:tls';
import { createSecureContext } from 'node:tls';

/** OpenSSL 3.5's default groups (same order and preference tuples), with a key share for X25519 only. */
const ONE_CLASSICAL_SHARE =
  '?X25519MLKEM768 / ?*X25519:?secp256r1 / ?X448:?secp384r1:?secp521r1 / ?ffdhe2048:?ffdhe3072';
/** How long a server that chose a classical group is offered one share before the hybrid one again. */
const REPROBE_MS = 60_000;
/** Servers remembered per context (a Redis Cluster's nodes share one); the oldest go first. */
const MAX_SERVERS = 256;

interface KeyShares {
  /** The options the full context was built from, for its one-share twin. */
  options: SecureContextOptions;
  /** Built when a server first chooses a classical group; null where OpenSSL cannot (before 3.5). */
  oneShare?: SecureContext | null;
  /** Server (host:port) → until when it is offered one share. */
  classicalUntil: Map<string, number>;
}

const shares = new WeakMap<SecureContext, KeyShares>();

/**
 * Whether this Node's OpenSSL (3.5 on) has the hybrid group and reads group tuples. Before it (Node 20
 * and 22: 3.0) there is nothing to learn, and the one-share context is never tried: OpenSSL would
 * refuse its group list and leave the error on the thread's queue, where Node reports it as the
 * failure of the next TLS connection.
 */
export const HYBRID_KEY_SHARES = opensslAtLeast(process.versions.openssl ?? '', 3, 5);

function opensslAtLeast(version: string, major: number, minor: number): boolean {
  const [a = 0, b = 0] = version.split(/[.+-]/).map(Number);
  return a > major || (a === major && b >= minor);
}

/** Registers a shared backend context (built with OpenSSL's default groups) for key-share learning. */
export function learnKeyShares(context: SecureContext, options: SecureContextOptions): void {
  if (HYBRID_KEY_SHARES) shares.set(context, { options, classicalUntil: new Map() });
}

/** The context for the next handshake with `server`: `context` itself, or its one-share twin. */
export function contextFor(context: SecureContext, server: string): SecureContext {
  const s = shares.get(context);
  const until = s?.classicalUntil.get(server);
  if (until === undefined || !s?.oneShare) return context;
  if (until > Date.now()) return s.oneShare;
  s.classicalUntil.delete(server);
  return context;
}

/** After a completed (verified) handshake with `server` made with `offered` (from contextFor(context)). */
export function noteKeyExchange(
  context: SecureContext,
  server: string,
  offered: SecureContext,
  socket: TLSSocket,
): void {
  const s = shares.get(context);
  if (!s) return;
  const group = (socket.getEphemeralKeyInfo() as { name?: string } | null)?.name ?? '';
  if (/MLKEM/i.test(group)) {
    s.classicalUntil.delete(server);
    return;
  }
  // Only a server that was offered the hybrid share and declined it; a one-share offer keeps its deadline.
  if (offered !== context || s.oneShare === null) return;
  s.oneShare ??= oneShareTwin(s.options);
  if (!s.oneShare) return;
  s.classicalUntil.delete(server);
  s.classicalUntil.set(server, Date.now() + REPROBE_MS);
  if (s.classicalUntil.size > MAX_SERVERS) s.classicalUntil.delete(s.classicalUntil.keys().next().value!);
}

function oneShareTwin(options: SecureContextOptions): SecureContext | null {
  try {
    return createSecureContext({ ...options, ecdhCurve: ONE_CLASSICAL_SHARE });
  } catch {
    return null; // an OpenSSL built without ML-KEM
  }
}
