// What the agent's data path reads of the API at run time, apart from the schemas: zod and the schemas
// built with it cost a Node process ~10 MB, and an agent's worker in cluster, which gets its state
// already parsed from the primary (agent/workers), never loads them. The schema files build on these
// and re-export them; code a worker runs imports them from here (test/integration/postgres/
// incluster-workers.test.ts fails when a worker loads zod).
import type { AgentLimitsSpec } from './limits.js';
import type { DatabaseSpec } from './database.js';

export const GROUP = 'drawbridge.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** Go-style durations as Kubernetes and Teleport write them: `8h`, `30m`, `1h30m`, `90s`. */
export const DURATION = /^(\d+(\.\d+)?(h|m|s|ms))+$/;
export const DURATION_MESSAGE = 'must be a duration such as "8h", "30m" or "1h30m"';

export function parseDuration(text: string): number {
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    const n = Number(m[1]);
    ms += n * { h: 3_600_000, m: 60_000, s: 1000, ms: 1 }[m[2] as 'h' | 'm' | 's' | 'ms'];
  }
  return ms;
}

/** An IAM role ARN, no wildcards: it becomes sts:AssumeRole's resource in the policies Drawbridge plans. */
export const ROLE_ARN = /^arn:aws[a-z-]*:iam::\d{12}:role\/[\w+=,.@/-]+$/;
export const ROLE_ARN_MESSAGE = 'must be an IAM role ARN (arn:aws:iam::ACCOUNT:role/NAME)';
export const HOST_PORT = /^(\[[0-9a-fA-F:]+\]|[^:\s]+):\d{1,5}$/;
export const HOST_PORT_MESSAGE = 'must be host:port, e.g. 0.0.0.0:5432 or 127.0.0.1:6379';

/** The host (IPv6 brackets removed) and port of a HOST_PORT. */
export function splitHostPort(listen: string): [string, string] {
  const i = listen.lastIndexOf(':');
  return [listen.slice(0, i).replace(/^\[|\]$/g, ''), listen.slice(i + 1)];
}

/** What the agent does when its audit log fails or falls behind (src/agent/audit.ts). */
export const AUDIT_MODES = ['required', 'best-effort'] as const;
export type AuditMode = (typeof AUDIT_MODES)[number];

export const AWS_TYPES = [
  'rds',
  'aurora',
  'redshift',
  'redshift-serverless',
  'elasticache',
  'elasticache-serverless',
] as const;
export type AwsType = (typeof AWS_TYPES)[number];

/** Backend address from spec.uri, plus whether the URI asks for Redis Cluster mode. */
export interface BackendAddress {
  host: string;
  port: number;
  tlsInUri: boolean;
  cluster: boolean;
  database?: string;
}

/** Parsed addresses by protocol and URI: a session reads its backend's several times (~10 µs a parse). */
const addresses = new Map<string, Readonly<BackendAddress>>();
const MAX_ADDRESSES = 256;

export function backendAddress(spec: Pick<DatabaseSpec, 'uri' | 'protocol'>): BackendAddress {
  const key = `${spec.protocol} ${spec.uri}`;
  let addr = addresses.get(key);
  if (addr === undefined) {
    addr = Object.freeze(parseBackendAddress(spec));
    if (addresses.size >= MAX_ADDRESSES) addresses.delete(addresses.keys().next().value!);
    addresses.set(key, addr);
  }
  return addr;
}

function parseBackendAddress(spec: Pick<DatabaseSpec, 'uri' | 'protocol'>): BackendAddress {
  const url = new URL(spec.uri);
  const defaultPort = spec.protocol === 'postgres' ? 5432 : 6379;
  const path = decodeURIComponent(url.pathname.replace(/^\//, ''));
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port ? Number(url.port) : defaultPort,
    tlsInUri: url.protocol === 'rediss:',
    cluster: url.searchParams.get('mode') === 'cluster',
    ...(path ? { database: path } : {}),
  };
}

/** Sizes as Kubernetes quantities in bytes: `65536`, `512Ki`, `128Mi`, `1Gi`. */
export const BYTE_SIZE = /^\d+(Ki|Mi|Gi)?$/;

export function parseByteSize(text: string): number {
  const m = /^(\d+)(Ki|Mi|Gi)?$/.exec(text)!;
  return Number(m[1]) * { '': 1, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 }[m[2] ?? '']!;
}

/** Limits with every default applied, in bytes and milliseconds. */
export interface Limits {
  maxConnections: number;
  maxConnectionsPerIdentity: number;
  authTimeoutMs: number;
  maxRequestBytes: number;
  outputMaxBytes: number;
  outputStallMs: number;
  maxPubSubPatterns: number;
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
    maxPubSubPatterns: s.maxPubSubPatterns ?? 1024,
  };
}

/**
 * The audience every agent accepted workload tokens for before tokens were scoped to one Database. A
 * token for it opens sessions at any agent, so one captured by one agent (or sent to the wrong
 * database) could be replayed at another; agents refuse it unless spec.workloads.acceptSharedAudience.
 */
export const SHARED_AUDIENCE = GROUP;

/**
 * The audience a workload's token must be for to reach the Database `namespace/name`:
 * `drawbridge.dev/<namespace>/<name>`. Kubernetes takes any string as an audience; names and namespaces
 * hold no `/`, so each Database has its own and none is another's prefix.
 */
export function workloadAudience(namespace: string, name: string): string {
  return `${GROUP}/${namespace}/${name}`;
}
