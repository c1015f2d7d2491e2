// The PostgreSQL side of `kubectl db proxy`. Local GUI clients speak plaintext to 127.0.0.1, so the
// proxy reads just the startup phase itself, then relays raw bytes over TLS to the agent:
//
//   client ── SSLRequest ──────────▶ proxy            (answered 'N': plaintext on loopback)
//   client ── StartupMessage ──────▶ proxy ── SSLRequest, 'S', TLS with client cert ──▶ agent
//                                          ── StartupMessage ─────────────────────────▶ agent
//   client ◀══════════════ raw bytes both ways ════════════▶ agent
//
// A CancelRequest (psql's Ctrl+C opens a new connection for it) takes the same path, so the agent
// sees it over TLS from an authenticated client and cancels the query.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { type StartupPacket, SqlState } from '../../engines/postgres/messages.js';
import {
  ENCRYPTION_REFUSED,
  cancelRequest,
  errorResponse,
  startupMessage,
} from '../../engines/postgres/serializer.js';
import { Wire } from '../../engines/postgres/wire.js';
import { DrawbridgeError, errorMessage, isDrawbridgeError } from '../../errors.js';
import { relay } from './relay.js';

/** The packet to send the agent, byte for byte what the client meant (protocol minor version kept). */
export function forwardedPacket(packet: Extract<StartupPacket, { kind: 'cancel' | 'startup' }>): Buffer {
  if (packet.kind === 'cancel') return cancelRequest(packet.processId, packet.secretKey);
  const bytes = startupMessage(packet.params);
  bytes.writeInt32BE((packet.major << 16) | packet.minor, 4);
  return bytes;
}

/** Reads the startup phase, refusing TLS/GSS encryption until the client sends its real first packet. */
async function firstPacket(
  wire: Wire,
  socket: Socket,
): Promise<Extract<StartupPacket, { kind: 'cancel' | 'startup' }>> {
  for (;;) {
    const packet = await wire.startup();
    if (packet.kind === 'ssl' || packet.kind === 'gssenc') {
      socket.write(ENCRYPTION_REFUSED);
      continue;
    }
    return packet;
  }
}

export async function servePostgresClient(socket: Socket, dial: () => Promise<TLSSocket>): Promise<void> {
  socket.setNoDelay(true);
  socket.on('error', () => socket.destroy());
  const wire = new Wire(socket, 'client');
  let packet: Extract<StartupPacket, { kind: 'cancel' | 'startup' }>;
  try {
    packet = await firstPacket(wire, socket);
  } catch {
    socket.destroy(); // Not a PostgreSQL client, or it went away: nothing to answer.
    return;
  }
  let agent: TLSSocket;
  try {
    agent = await dial();
  } catch (err) {
    // A cancel has no reply channel; a session gets the reason in its own protocol.
    if (packet.kind === 'startup') {
      const hint = err instanceof DrawbridgeError ? err.hint : undefined;
      const credentials = isDrawbridgeError(err, 'SESSION_EXPIRED') || isDrawbridgeError(err, 'AUTHN_FAILED');
      socket.end(
        errorResponse({
          severity: 'FATAL',
          code: credentials ? SqlState.InvalidAuthorization : SqlState.ConnectionFailure,
          message: `kubectl db proxy: ${errorMessage(err)}`,
          ...(hint ? { hint } : {}),
        }),
      );
    } else socket.destroy();
    return;
  }
  agent.write(forwardedPacket(packet));
  const rest = wire.detach();
  if (rest.length) agent.write(rest);
  relay(socket, agent);
  socket.resume();
}
