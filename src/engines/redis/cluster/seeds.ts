// Where an agent starts with a Redis Cluster it knows nothing about yet: spec.uri's node and the
// spec.redis.seedNodes, whichever answers first (askAny). A silent seed (stopped, hung: the kernel
// completes the TCP handshake, the TLS one never comes) must not hold the first session up for the
// connect timeout: past FIRST_REPLY_MS (or the command timeout, if shorter) the session fails with an
// error naming the seeds and the fix. Once the shape is known the agent asks the nodes it names.
import type { DatabaseSpec } from '../../../api/database.js';
import { backendAddress, parseDuration, splitHostPort } from '../../../api/runtime.js';
import { DrawbridgeError } from '../../../errors.js';
import { askAny } from './hung-nodes.js';
import type { NodeAddress } from './shape.js';

/** How long the first session waits for any seed to answer. */
const FIRST_REPLY_MS = 5000;
/** spec.redis.commandTimeout when unset: generous for slow commands (KEYS, big Lua), bounded for a hung node. */
export const DEFAULT_COMMAND_TIMEOUT = '30s';

type Spec = Pick<DatabaseSpec, 'uri' | 'protocol' | 'redis'>;

export function commandTimeoutMs(spec: Spec): number {
  return parseDuration(spec.redis?.commandTimeout ?? DEFAULT_COMMAND_TIMEOUT);
}

/** spec.uri's node, then spec.redis.seedNodes. */
export function clusterSeeds(spec: Spec): NodeAddress[] {
  const { host, port } = backendAddress(spec);
  const more = (spec.redis?.seedNodes ?? []).map(splitHostPort);
  return [{ host, port }, ...more.map(([h, p]) => ({ host: h, port: Number(p) }))];
}

/** `ask` of the seeds in turn (askAny), the first answer winning, within the first-reply limit. */
export function fromAnySeed<T>(spec: Spec, ask: (node: NodeAddress) => Promise<T>): Promise<T> {
  const seeds = clusterSeeds(spec);
  return firstReply(
    spec,
    askAny(
      seeds.map((_, i) => i),
      (i) => ask(seeds[i]!),
    ),
  );
}

/** `work`, or past the first-reply limit the error naming the seeds (work's outcome is then ignored). */
export async function firstReply<T>(spec: Spec, work: Promise<T>): Promise<T> {
  const limitMs = Math.min(FIRST_REPLY_MS, commandTimeoutMs(spec));
  work.catch(() => undefined); // reported by the race below, unless the limit came first
  let timer: NodeJS.Timeout | undefined;
  const silent = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(silentSeeds(spec, limitMs)), limitMs);
  });
  try {
    return await Promise.race([work, silent]);
  } finally {
    clearTimeout(timer);
  }
}

function silentSeeds(spec: Spec, limitMs: number): DrawbridgeError {
  const { host, port } = backendAddress(spec);
  const more = spec.redis?.seedNodes ?? [];
  const seeds = [`${host}:${port} (spec.uri)`, ...more.map((s) => `${s} (spec.redis.seedNodes)`)];
  return new DrawbridgeError(
    'BACKEND_UNREACHABLE',
    `no node of the cluster answered within ${limitMs} ms: ${seeds.join(', ')}`,
    more.length
      ? 'the nodes may be hung, overloaded or behind a network that drops packets: check them'
      : "the node may be hung, overloaded or behind a network that drops packets: check it, and list more of the cluster's nodes in spec.redis.seedNodes so that the agent can start from another",
  );
}
