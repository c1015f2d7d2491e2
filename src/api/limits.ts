// Limits an agent enforces on its clients, so no client (logged in or not) can exhaust its memory or
// its connection slots. Set in the Database's spec.agent.limits (in cluster) or the AgentConfig's
// spec.limits (standalone, field by field over the Database's). Defaults are applied once, here.
import { z } from 'zod';
import { duration, parseDuration } from './meta.js';

/** Sizes as Kubernetes quantities in bytes: `65536`, `512Ki`, `128Mi`, `1Gi`. */
const byteSize = z
  .string()
  .regex(/^\d+(Ki|Mi|Gi)?$/, 'must be a size in bytes such as "65536", "512Ki", "128Mi" or "1Gi"');

export function parseByteSize(text: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(text)!;
  return Number(m[1]) * { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] ?? '']!;
}

export const AgentLimitsSpec = z
  .object({
    maxConnections: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('Client connections one agent replica holds, logged in or not (default 1000).'),
    maxConnectionsPerIdentity: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe('Client connections of one person or workload per agent replica (default 100).'),
    authTimeout: duration
      .optional()
      .describe(
        'How long a connection may take to authenticate (TLS, then a client certificate or a token) ' +
          'before it is closed (default 10s).',
      ),
    maxRequestBytes: byteSize
      .optional()
      .describe(
        'Largest Redis command, and largest PostgreSQL message, a logged-in client may send (default ' +
          '128Mi; Redis allows 512MB bulks, PostgreSQL 1GB messages). The agent holds a whole Redis ' +
          'command before it checks and audits it, so this bounds its memory per connection.',
      ),
    outputBuffer: z
      .object({
        maxBytes: byteSize
          .optional()
          .describe('Output waiting for the client beyond which it is disconnected (default 32Mi).'),
        stallTimeout: duration
          .optional()
          .describe('How long the client may read nothing of its waiting output (default 60s).'),
      })
      .optional()
      .describe(
        'Redis pub/sub messages waiting for a client that does not read them: past ' +
          'maxBytes (default 32Mi), or with nothing read for stallTimeout (default 60s), the client is ' +
          "disconnected (like Redis's client-output-buffer-limit pubsub).",
      ),
  })
  .describe('Limits on clients; see the README section "Limits".');
export type AgentLimitsSpec = z.infer<typeof AgentLimitsSpec>;

/** Limits with every default applied, in bytes and milliseconds. */
export interface Limits {
  maxConnections: number;
  maxConnectionsPerIdentity: number;
  authTimeoutMs: number;
  maxRequestBytes: number;
  outputMaxBytes: number;
  outputStallMs: number;
}

/** `override` (AgentConfig) wins field by field over `base` (the Database's spec.agent.limits). */
export function resolveLimits(base: AgentLimitsSpec = {}, override: AgentLimitsSpec = {}): Limits {
  const s = { ...base, ...override, outputBuffer: { ...base.outputBuffer, ...override.outputBuffer } };
  return {
    maxConnections: s.maxConnections ?? 1000,
    maxConnectionsPerIdentity: s.maxConnectionsPerIdentity ?? 100,
    authTimeoutMs: parseDuration(s.authTimeout ?? '10s'),
    maxRequestBytes: parseByteSize(s.maxRequestBytes ?? '128Mi'),
    outputMaxBytes: parseByteSize(s.outputBuffer.maxBytes ?? '32Mi'),
    outputStallMs: parseDuration(s.outputBuffer.stallTimeout ?? '60s'),
  };
}
