// A TCP proxy that can go silent on the connections it holds: what a dropped NAT/conntrack entry, a lost
// host or a middlebox does to a long-lived connection. The sockets stay open (no FIN, no RST), bytes
// are read and dropped in both directions, and connections opened afterwards are forwarded again: the
// network healed, but whoever still waits on an old connection hears nothing, ever.
import net from 'node:net';
import type { AddressInfo } from 'node:net';

export interface BlackholeProxy {
  readonly port: number;
  /** Connections forwarded so far. */
  readonly connections: number;
  /** Every connection open now stops forwarding, silently and for good. */
  blackholeOpen(): number;
  close(): Promise<void>;
}

export async function blackholeProxy(target: { host: string; port: number }): Promise<BlackholeProxy> {
  const open = new Set<[net.Socket, net.Socket]>();
  const silent = new Set<net.Socket>();
  let connections = 0;
  const server = net.createServer((client) => {
    connections++;
    const upstream = net.connect(target.port, target.host);
    const pair: [net.Socket, net.Socket] = [client, upstream];
    open.add(pair);
    client.pipe(upstream);
    upstream.pipe(client);
    const close = () => {
      open.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    for (const s of pair) s.on('error', close).on('close', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    get connections() {
      return connections;
    },
    blackholeOpen() {
      const n = open.size;
      for (const [client, upstream] of open) {
        client.unpipe(upstream);
        upstream.unpipe(client);
        for (const s of [client, upstream]) {
          // Nothing crosses any more, not even a close: the server ending its side goes unheard.
          s.removeAllListeners('close').removeAllListeners('error').removeAllListeners('end');
          s.on('error', () => undefined);
          // Keep reading so neither side sees backpressure; what arrives goes nowhere.
          s.removeAllListeners('data').on('data', () => undefined);
          silent.add(s);
        }
      }
      open.clear();
      return n;
    },
    async close() {
      for (const pair of open) for (const s of pair) s.destroy();
      for (const s of silent) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
