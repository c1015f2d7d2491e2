import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { afterEach, expect, it } from 'vitest';
import { CancelPeers } from '../../../src/engines/postgres/cancel-peers.js';
import type { Logger } from '../../../src/log.js';

let peer: Server | undefined;
const held: Socket[] = [];
afterEach(() => {
  held.splice(0).forEach((s) => s.destroy());
  peer?.close();
});

it('logs a flood of cancel relays it drops once, with their count, not one line each', async () => {
  // A peer that takes each relay and never closes it: every relay stays in flight (2 s).
  peer = createServer((s) => held.push(s.on('error', () => undefined)));
  await new Promise<void>((resolve) => peer!.listen(0, '127.0.0.1', resolve));
  const warnings: object[] = [];
  const log = { warn: (fields: object) => warnings.push(fields) } as unknown as Logger;
  const peers = new CancelPeers(log);
  const target = [`127.0.0.1:${(peer.address() as AddressInfo).port}`];
  // A stranger's 200 CancelRequests with made-up keys: 64 relayed, 136 dropped.
  const reached = await Promise.all(
    Array.from({ length: 200 }, (_, i) => peers.relay({ processId: i, secretKey: i }, target)),
  );
  expect(reached.filter((n) => n === 0)).toHaveLength(136);
  expect(warnings).toEqual([{ dropped: 1, inFlight: 64 }]);
});
