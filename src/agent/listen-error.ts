// A listener that cannot bind says which address, why, and what to change, instead of Node's bare
// `listen EADDRINUSE: address already in use` (or, in a worker, node:cluster's `bind EADDRINUSE`).
import { DrawbridgeError, errorMessage } from '../errors.js';

const WHY: Record<string, [why: string, fix: string]> = {
  EADDRINUSE: ['the port is in use by another process', 'stop what holds it, or choose a free port'],
  EACCES: [
    'permission denied (ports below 1024 need CAP_NET_BIND_SERVICE)',
    'choose a port above 1023, or grant the capability',
  ],
  EADDRNOTAVAIL: ['no interface of this host has that address', 'use 0.0.0.0 or an address of this host'],
};

/**
 * `what` names the listener ("client connections"); `setting` where its address comes from
 * ("--listen, or spec.listen in a standalone agent's config").
 */
export function listenError(err: unknown, what: string, address: string, setting: string): Error {
  const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
  const [why, fix] = WHY[code] ?? [errorMessage(err), 'check the address'];
  return new DrawbridgeError(
    'INVALID_CONFIG',
    `cannot listen on ${address} for ${what}: ${why}`,
    `${fix} (${setting})`,
    {
      cause: err,
    },
  );
}
