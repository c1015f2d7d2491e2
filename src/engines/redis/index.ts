// Redis engine: the agent speaks RESP2 to clients and to Redis (standalone or Redis Cluster).
//
//   client (redis-cli, ioredis)          agent                                     Redis
//     │══ TLS handshake (client cert) ══▶│ identity = cert CN/O, or none yet         │
//     │── HELLO 3 ──────────────────────▶│                                           │
//     │◀── -NOPROTO ─────────────────────│ RESP2 only: clients fall back             │
//     │── AUTH app <pass|SA token> ─────▶│ token → TokenVerifier; authorize(app)     │
//     │                                  │── first time: COMMAND, HELLO ────────────▶│ catalog (cached
//     │                                  │◀─ categories per command, cluster mode ───│  per backend)
//     │                                  │── TCP/TLS (spec.tls), AUTH app <cred> ───▶│ credential
//     │◀── +OK ──────────────────────────│◀─ +OK ────────────────────────────────────│
//     │── GET k / SET k v … (pipelined) ▶│ rule check per command (@read, @write …), │
//     │                                  │ audit, relay raw bytes ══════════════════▶│
//     │◀══ replies, in command order ════│◀═══ raw reply frames ══════════════════════│
//     │── FLUSHALL ─────────────────────▶│ denied: -NOPERM naming the rule (not sent)│
//     │── AUTH admin <pass> ────────────▶│ authorize(admin) ── AUTH admin <cred> ───▶│ same connection
//
// Files: parser.ts / reply-parser.ts / serializer.ts (codec), session.ts (per-command pipeline),
// session-login.ts (identity, AUTH, user switch), local-commands.ts (AUTH, HELLO, QUIT, RESET ...),
// command-catalog.ts (categories from the backend), router.ts (the router seam),
// standalone-router.ts (one pipelined backend connection), cluster/ (Redis Cluster router),
// backend-auth.ts (backend connect + AUTH), audit.ts (argument redaction).
import type { Socket } from 'node:net';
import { acceptTls } from '../../agent/tls.js';
import type { DrawbridgeError } from '../../errors.js';
import { type AgentRuntime, type Engine, registerEngine } from '../types.js';
import { drawbridgeErrorReply, errorReply } from './serializer.js';
import { closeClusterServices } from './cluster/index.js';
import { RedisSession } from './session.js';
import './standalone-router.js';

const TLS_HANDSHAKE = 0x16; // first byte of a TLS record carrying a ClientHello
const TLS_REQUIRED = errorReply(
  'ERR',
  'this drawbridge agent only accepts TLS connections (hint: redis-cli --tls --cert <crt> --key <key> --cacert <ca>, or kubectl db connect NAME)',
);

export class RedisEngine implements Engine {
  readonly protocol = 'redis' as const;

  handleConnection(socket: Socket, agent: AgentRuntime, refusal?: DrawbridgeError): void {
    socket.setNoDelay(true);
    const clientAddress = `${socket.remoteAddress}:${socket.remotePort}`;
    // The auth deadline runs from the first byte: a TLS handshake that never finishes counts too.
    const openedAt = Date.now();
    const deadline = openedAt + agent.limits.authTimeoutMs;
    const timer = setTimeout(() => {
      agent.limitExceeded('authTimeout', { clientAddress, during: 'TLS handshake' });
      socket.destroy();
    }, agent.limits.authTimeoutMs);
    timer.unref();
    // A plaintext client would only see a failed handshake; answer it in RESP instead.
    socket.once('data', (first: Buffer) => {
      socket.pause();
      if (first[0] !== TLS_HANDSHAKE) {
        clearTimeout(timer);
        socket.end(TLS_REQUIRED);
        return;
      }
      socket.unshift(first);
      const tls = acceptTls(socket, agent.serverTls());
      tls.on('error', (err) => {
        agent.log.debug({ clientAddress, err: err.message }, 'client TLS error');
        tls.destroy();
      });
      tls.once('secure', () => {
        clearTimeout(timer);
        if (refusal) return void tls.end(drawbridgeErrorReply(refusal));
        new RedisSession(tls, agent, clientAddress, openedAt).start(deadline);
      });
    });
  }

  /** Cluster sessions share node connections across sessions; close them with the agent. */
  async close(): Promise<void> {
    closeClusterServices();
  }
}

registerEngine('redis', () => new RedisEngine());
