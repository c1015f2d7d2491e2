// Limits an agent enforces on its clients, so no client (logged in or not) can exhaust its memory or
// its connection slots. Set in the Database's spec.agent.limits (in cluster) or the AgentConfig's
// spec.limits (standalone, field by field over the Database's). Defaults are applied once, here.
import { z } from 'zod';
import { duration } from './meta.js';
import { BYTE_SIZE } from './runtime.js';

export { type Limits, parseByteSize, resolveLimits } from './runtime.js';

/** Sizes as Kubernetes quantities in bytes: `65536`, `512Ki`, `128Mi`, `1Gi`. */
const byteSize = z
  .string()
  .regex(BYTE_SIZE, 'must be a size in bytes such as "65536", "512Ki", "128Mi" or "1Gi"');

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
    maxPubSubPatterns: z
      .number()
      .int()
      .min(1)
      .max(100_000)
      .optional()
      .describe(
        'Redis pub/sub patterns (PSUBSCRIBE) one session may hold (default 1024); a PSUBSCRIBE past it is ' +
          'refused. Redis before 7.2 spends time quadratic in the patterns of one connection: 100,000 ' +
          'would keep the server busy for minutes.',
      ),
  })
  .describe('Limits on clients; see the README section "Limits".');
export type AgentLimitsSpec = z.infer<typeof AgentLimitsSpec>;
