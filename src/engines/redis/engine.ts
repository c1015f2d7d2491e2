// The Redis engine: TLS first (a plaintext client is answered in RESP), then one RedisSession per
// client. What sessions share — the routers of each mode, with cluster connections — is held here,
// per agent, and closed with it. See index.ts for the protocol diagram.
import type { Socket } from 'node:net';
import { acceptTls } from '../../agent/tls.js';
import type { AgentRuntime, Engine } from '../../agent/engine.js';
import { onFirstUse } from '../../on-first-use.js';
import { DrawbridgeError } from '../../errors.js';
import type { OpenRouter, RouterMode, RouterModes, Routers } from './router.js';
import { drawbridgeErrorReply, errorReply } from './serializer.js';
import { RedisSession } from './session.js';

const TLS_HANDSHAKE = 0x16; // first byte of a TLS record carrying a ClientHello
const TLS_REQUIRED = errorReply(
  'ERR',
  'this drawbridge agent only accepts TLS connections (hint: redis-cli --tls --cert <crt> --key <key> --cacert <ca>, or kubectl db connect NAME)',
);

export class RedisEngine implements Engine {
  readonly protocol = 'redis' as const;
  /** This agent's routers, by mode, made on first use (a session waits for its mode's modules to load). */
  private readonly routers = new Map<RouterMode, () => Promise<Routers>>();
  /** The routers made, to close with the agent. */
  private readonly made = new Set<Routers>();

  constructor(private readonly modes: RouterModes) {}

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
        new RedisSession(tls, agent, clientAddress, openedAt, this.openRouter).start(deadline);
      });
    });
  }

  private readonly openRouter: OpenRouter = async (mode, opts) => {
    let routers = this.routers.get(mode);
    if (!routers) {
      const make = this.modes[mode];
      if (!make) throw unavailable(mode);
      routers = onFirstUse(async () => {
        const made = await make();
        this.made.add(made);
        return made;
      });
      this.routers.set(mode, routers);
    }
    return (await routers()).open(opts);
  };

  /** Cluster sessions share node connections across sessions; close them with the agent. */
  async close(): Promise<void> {
    const pending = [...this.routers.values()];
    this.routers.clear();
    await Promise.allSettled(pending.map((routers) => routers()));
    for (const routers of this.made) routers.close();
    this.made.clear();
  }
}

function unavailable(mode: RouterMode): DrawbridgeError {
  return new DrawbridgeError(
    'INVALID_CONFIG',
    `Redis ${mode} mode is not available in this agent build`,
    mode === 'cluster' ? 'remove ?mode=cluster from spec.uri or use a build with cluster support' : undefined,
  );
}
