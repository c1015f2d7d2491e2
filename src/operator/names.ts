// Names, labels and annotations shared by the controller, the in-cluster agent and the tools that
// look for agents. Object names derive from the Database name but must also be valid Service names
// (DNS-1035 labels, at most 63 characters), which a Database name need not be.
import { createHash } from 'node:crypto';
// runtime.js, not meta.js: the in-cluster agent's workers import this file and must not load zod.
import { GROUP } from '../api/runtime.js';

export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const LABEL_NAME = 'app.kubernetes.io/name';
export const LABEL_INSTANCE = 'app.kubernetes.io/instance';
const LABEL_COMPONENT = 'app.kubernetes.io/component';
export const MANAGED_BY = 'drawbridge';
const AGENT_COMPONENT = 'agent';
/** Selects every object the controller manages. */
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY}`;
/** Selects agent Deployments (what a node agent or a dashboard looks for). */
export const AGENT_SELECTOR = `${MANAGED_SELECTOR},${LABEL_COMPONENT}=${AGENT_COMPONENT}`;

/** On agent objects: the Database they serve, as `namespace/name`. */
export const ANNOTATION_DATABASE = `${GROUP}/database`;
/** On CSRs: which database user the person wants to log in as. */
export const ANNOTATION_DB_USER = `${GROUP}/db-user`;
/** On the agent pod template: a digest of the serving certificate, so a new certificate rolls the pods. */
export const ANNOTATION_TLS_DIGEST = `${GROUP}/tls-digest`;

export const FINALIZER = `${GROUP}/agent-cleanup`;
export const SIGNER_NAME = `${GROUP}/database-client`;

/** Where the agent's serving certificate, key and client CA are mounted in its pod. */
export const AGENT_TLS_DIR = '/etc/drawbridge/tls';
export const AGENT_METRICS_PORT = 9090;
/** The agent container's terminationMessagePath (the Kubernetes default), passed as --termination-log. */
export const AGENT_TERMINATION_LOG = '/dev/termination-log';

/**
 * `drawbridge-<database><suffix>`, made DNS-1035-safe and cut to 63 characters with a hash before the
 * suffix when needed.
 */
export function agentName(database: string, suffix = ''): string {
  const base = `drawbridge-${database.replace(/\./g, '-')}`;
  if (base.length + suffix.length <= 63) return base + suffix;
  const hash = createHash('sha256').update(database).digest('hex').slice(0, 8);
  return `${base.slice(0, 54 - suffix.length).replace(/-+$/, '')}-${hash}${suffix}`;
}

/**
 * The headless Service resolving to every agent pod of a PostgreSQL Database, ready or not (a draining
 * pod still holds sessions): where a replica relays a cancel for a session it does not hold.
 */
export function agentPeersName(database: string): string {
  return agentName(database, '-peers');
}

export function agentTlsSecretName(database: string): string {
  return `${agentName(database)}-tls`;
}

export function agentPort(protocol: 'postgres' | 'redis'): number {
  return protocol === 'postgres' ? 5432 : 6379;
}

/** The agent Service's DNS name, which its serving certificate names and clients verify. */
export function agentHost(namespace: string, database: string): string {
  return `${agentName(database)}.${namespace}.svc`;
}

/** The in-cluster address clients use: the agent Service's DNS name and port. */
export function agentEndpoint(namespace: string, database: string, protocol: 'postgres' | 'redis'): string {
  return `${agentHost(namespace, database)}:${agentPort(protocol)}`;
}

export function agentDnsNames(namespace: string, database: string): string[] {
  const svc = agentName(database);
  return [svc, `${svc}.${namespace}`, `${svc}.${namespace}.svc`, `${svc}.${namespace}.svc.cluster.local`];
}

export function agentLabels(database: string): Record<string, string> {
  return {
    [LABEL_NAME]: 'drawbridge-agent',
    [LABEL_INSTANCE]: agentName(database),
    [LABEL_COMPONENT]: AGENT_COMPONENT,
    [LABEL_MANAGED_BY]: MANAGED_BY,
  };
}

/** The subset of labels the Deployment and Service select pods by (immutable once created). */
export function agentSelector(database: string): Record<string, string> {
  return { [LABEL_NAME]: 'drawbridge-agent', [LABEL_INSTANCE]: agentName(database) };
}
