// REST paths for the kinds Drawbridge touches. A fixed table instead of discovery: these are stable
// built-in APIs plus our own CRDs, and a typo should fail at compile time, not at run time.
import { API_VERSION } from '../api/runtime.js';
import type { KubeObject } from './types.js';

interface ResourceType {
  apiVersion: string;
  plural: string;
  namespaced: boolean;
}

const RESOURCES = {
  Database: { apiVersion: API_VERSION, plural: 'databases', namespaced: true },
  AccessRole: { apiVersion: API_VERSION, plural: 'accessroles', namespaced: true },
  DatabaseUser: { apiVersion: API_VERSION, plural: 'databaseusers', namespaced: true },
  Namespace: { apiVersion: 'v1', plural: 'namespaces', namespaced: false },
  ServiceAccount: { apiVersion: 'v1', plural: 'serviceaccounts', namespaced: true },
  Secret: { apiVersion: 'v1', plural: 'secrets', namespaced: true },
  ConfigMap: { apiVersion: 'v1', plural: 'configmaps', namespaced: true },
  Service: { apiVersion: 'v1', plural: 'services', namespaced: true },
  Event: { apiVersion: 'v1', plural: 'events', namespaced: true },
  Pod: { apiVersion: 'v1', plural: 'pods', namespaced: true },
  Deployment: { apiVersion: 'apps/v1', plural: 'deployments', namespaced: true },
  PodDisruptionBudget: { apiVersion: 'policy/v1', plural: 'poddisruptionbudgets', namespaced: true },
  NetworkPolicy: { apiVersion: 'networking.k8s.io/v1', plural: 'networkpolicies', namespaced: true },
  Role: { apiVersion: 'rbac.authorization.k8s.io/v1', plural: 'roles', namespaced: true },
  RoleBinding: { apiVersion: 'rbac.authorization.k8s.io/v1', plural: 'rolebindings', namespaced: true },
  ClusterRole: { apiVersion: 'rbac.authorization.k8s.io/v1', plural: 'clusterroles', namespaced: false },
  ClusterRoleBinding: {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    plural: 'clusterrolebindings',
    namespaced: false,
  },
  CertificateSigningRequest: {
    apiVersion: 'certificates.k8s.io/v1',
    plural: 'certificatesigningrequests',
    namespaced: false,
  },
  Lease: { apiVersion: 'coordination.k8s.io/v1', plural: 'leases', namespaced: true },
  TokenReview: { apiVersion: 'authentication.k8s.io/v1', plural: 'tokenreviews', namespaced: false },
} as const satisfies Record<string, ResourceType>;

export type Kind = keyof typeof RESOURCES;

function groupPath(apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

/** The collection: `/apis/apps/v1/namespaces/ns/deployments`, or across namespaces when `namespace` is omitted. */
export function collectionPath(kind: Kind, namespace?: string): string {
  const t = RESOURCES[kind];
  const ns = t.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${groupPath(t.apiVersion)}${ns}/${t.plural}`;
}

export function objectPath(kind: Kind, name: string, namespace?: string, subresource?: string): string {
  const sub = subresource ? `/${subresource}` : '';
  return `${collectionPath(kind, namespace)}/${encodeURIComponent(name)}${sub}`;
}

/** The path of an object that carries its own `kind` and `metadata`. */
export function pathOf(obj: KubeObject, subresource?: string): string {
  const kind = obj.kind as Kind;
  if (!(kind in RESOURCES)) throw new Error(`unsupported kind ${String(obj.kind)}`);
  return objectPath(kind, obj.metadata.name, obj.metadata.namespace, subresource);
}

export function apiVersionOf(kind: Kind): string {
  return RESOURCES[kind].apiVersion;
}
