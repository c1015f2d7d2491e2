// Cancels across agent replicas. psql sends Ctrl+C's CancelRequest on a new connection, which a load
// balancer (a Kubernetes Service, an AWS NLB) may hand to any replica; only the replica holding the
// session knows its key. A replica that does not know a key relays it once to every peer as a
// PeerCancelRequest, which a peer acts on only when the key is its own and never relays again: one
// hop, no loops, and a guessed key still cancels nothing.
import { lookup } from 'node:dns/promises';
import { connect } from 'node:net';
import { errorMessage } from '../../errors.js';
import type { Logger } from '../../log.js';
import type { CancelKey } from './cancel.js';
import { StartupCode } from './messages.js';
import { cancelRequest } from './serializer.js';

const RELAY_TIMEOUT_MS = 2_000;
/** Unknown keys are cheap to send; relays are not. Past this many in flight, more are dropped. */
const MAX_RELAYS_IN_FLIGHT = 64;
/** Drops come in floods (a stranger's stream of CancelRequests): logged with their count this often. */
const DROP_LOG_MS = 30_000;

export class CancelPeers {
  private inFlight = 0;
  private dropped = 0;
  private loggedAt = -Infinity;

  constructor(private readonly log: Logger) {}

  /**
   * Sends the key to every address of every peer (`host:port`; a name may resolve to many addresses,
   * as a headless Service does to its pods). Resolves when all have been tried; returns how many took it.
   */
  async relay(key: CancelKey, peers: readonly string[]): Promise<number> {
    if (peers.length === 0) return 0;
    if (this.inFlight >= MAX_RELAYS_IN_FLIGHT) {
      this.dropped++;
      if (Date.now() - this.loggedAt >= DROP_LOG_MS) {
        this.loggedAt = Date.now();
        this.log.warn(
          { dropped: this.dropped, inFlight: this.inFlight },
          'too many cancel requests to relay to peer replicas at once; dropping them (dropped: count so far)',
        );
      }
      return 0;
    }
    this.inFlight++;
    try {
      const targets = (await Promise.all(peers.map((p) => this.resolve(p)))).flat();
      const packet = cancelRequest(key.processId, key.secretKey, StartupCode.PeerCancelRequest);
      const sent = await Promise.all(targets.map(([host, port]) => send(host, port, packet)));
      return sent.filter(Boolean).length;
    } finally {
      this.inFlight--;
    }
  }

  private async resolve(peer: string): Promise<[string, number][]> {
    const i = peer.lastIndexOf(':');
    const host = peer.slice(0, i).replace(/^\[|\]$/g, '');
    const port = Number(peer.slice(i + 1));
    try {
      const addresses = await lookup(host, { all: true });
      return addresses.map((a) => [a.address, port]);
    } catch (err) {
      this.log.warn({ peer, err: errorMessage(err) }, 'could not resolve a peer replica for a cancel');
      return [];
    }
  }
}

/** One PeerCancelRequest on its own connection; true once written and closed by the peer. */
function send(host: string, port: number, packet: Buffer): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const timer = setTimeout(() => socket.destroy(), RELAY_TIMEOUT_MS);
    let written = false;
    socket.once('connect', () => socket.end(packet, () => (written = true)));
    socket.once('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(written);
    });
    socket.resume();
  });
}
