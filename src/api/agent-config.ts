// AgentConfig: the standalone agent's own settings (not a CRD). It sits in the same YAML stream as the
// Database, AccessRole, DatabaseUser and Secret documents it uses.
import { z } from 'zod';
import { AUDIT_MODES } from './database.js';
import { AgentLimitsSpec } from './limits.js';
import { duration, objectName, parseDuration, resource } from './meta.js';
import { HOST_PORT, HOST_PORT_MESSAGE } from './runtime.js';

export const hostPort = z.string().regex(HOST_PORT, HOST_PORT_MESSAGE);

export const AgentConfigSpec = z.object({
  listen: hostPort,
  database: objectName,
  tls: z.object({
    certFile: z.string().min(1),
    keyFile: z.string().min(1),
    clientCAFile: z.string().min(1),
  }),
  audit: z
    .object({
      path: z.string().min(1).default('-'),
      /** The default for Databases that set no spec.audit.mode (see README, "Audit guarantees"). */
      mode: z.enum(AUDIT_MODES).default('required'),
      /** Required mode: how long sessions wait for a stuck audit log before they end. */
      stallTimeout: duration.refine((d) => parseDuration(d) >= 1000, 'must be at least 1s').default('30s'),
      /** Bytes of events waiting to be written past which the log counts as behind. */
      bufferBytes: z
        .number()
        .int()
        .min(64 * 1024)
        .default(8 << 20),
    })
    .default({ path: '-', mode: 'required', stallTimeout: '30s', bufferBytes: 8 << 20 }),
  /** Where Prometheus metrics are served (host:port); off when unset. */
  metrics: hostPort.optional(),
  /**
   * The other replicas behind the same load balancer (host:port of their listeners; a DNS name may
   * resolve to several). A PostgreSQL cancel that lands on a replica without the session is relayed
   * to them, so Ctrl+C works whichever replica the balancer picks.
   */
  peers: z.array(hostPort).default([]),
  /** Over the Database's spec.agent.limits, field by field. */
  limits: AgentLimitsSpec.optional(),
});

export const AgentConfig = resource('AgentConfig', AgentConfigSpec, z.object({}).passthrough());
export type AgentConfig = z.infer<typeof AgentConfig>;

/** The subset of a core/v1 Secret the agent reads: `stringData` (as written by people) or `data` (base64). */
export const Secret = z.object({
  apiVersion: z.literal('v1'),
  kind: z.literal('Secret'),
  metadata: z.object({ name: objectName, namespace: z.string().optional() }),
  stringData: z.record(z.string(), z.string()).optional(),
  data: z.record(z.string(), z.string()).optional(),
});
export type Secret = z.infer<typeof Secret>;

/** Reads Secrets by name: the agent's state, or the operator's API reads (backend probes). */
export interface SecretReader {
  /** Values of a Secret, or undefined when it does not exist (yet). */
  secret(name: string): Record<string, string> | undefined;
}

export function secretValues(secret: Secret): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(secret.data ?? {})) out[k] = Buffer.from(v, 'base64').toString('utf8');
  return { ...out, ...secret.stringData };
}
