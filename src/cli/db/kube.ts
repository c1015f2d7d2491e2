// The cluster the plugin talks to, chosen the way kubectl chooses it: --kubeconfig, else $KUBECONFIG,
// else ~/.kube/config; --context, else the current context; -n, else the context's namespace.
import * as k8s from '@kubernetes/client-node';
import { Database } from '../../api/database.js';
import { GROUP, VERSION } from '../../api/meta.js';
import type { Identity } from '../../authn/identity.js';
import { DrawbridgeError } from '../../errors.js';
import { loadKubeConfigInto } from '../args.js';

export interface GlobalOptions {
  kubeconfig?: string;
  context?: string;
  namespace?: string;
}

export interface KubeTarget {
  kc: k8s.KubeConfig;
  /** Context name: part of where credentials are stored, so two clusters never share a login. */
  context: string;
  namespace: string;
}

export function loadTarget(opts: GlobalOptions): KubeTarget {
  const kc = new k8s.KubeConfig();
  loadKubeConfigInto(kc, opts.kubeconfig);
  if (opts.context) {
    if (!kc.getContextObject(opts.context)) {
      throw new DrawbridgeError(
        'INVALID_CONFIG',
        `context "${opts.context}" is not in the kubeconfig`,
        'list contexts with kubectl config get-contexts',
      );
    }
    kc.setCurrentContext(opts.context);
  }
  const context = kc.getCurrentContext();
  if (!context || !kc.getCurrentCluster()) {
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      'no current Kubernetes context',
      'pass --context or --kubeconfig, or run kubectl config use-context NAME',
    );
  }
  const namespace = opts.namespace ?? kc.getContextObject(context)?.namespace ?? 'default';
  return { kc, context, namespace };
}

/** Turns a client-node ApiException (whose message holds the whole response) into a short, typed error. */
export function kubeError(err: unknown, doing: string): Error {
  if (!(err instanceof k8s.ApiException)) {
    if (err instanceof Error) return err;
    // The WebSocket client (port-forward) rejects with an ErrorEvent: "Unexpected server response: 403".
    const message = (err as { message?: unknown } | undefined)?.message;
    if (typeof message !== 'string') return new Error(String(err));
    const code = Number(/server response: (\d{3})/.exec(message)?.[1]);
    return new DrawbridgeError('KUBE_ERROR', `${doing}: ${message}`, hintFor(code), { cause: err });
  }
  const body = typeof err.body === 'string' ? safeJson(err.body) : err.body;
  const detail = (body as { message?: string } | undefined)?.message ?? `HTTP ${err.code}`;
  return new DrawbridgeError('KUBE_ERROR', `${doing}: ${detail}`, hintFor(err.code), { cause: err });
}

function hintFor(code: number): string | undefined {
  if (code === 403)
    return 'ask a cluster admin to bind you to the drawbridge-user ClusterRole (see the chart NOTES)';
  if (code === 401) return 'your kubeconfig credentials were rejected: log in to the cluster again';
  return undefined;
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return { message: text };
  }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof k8s.ApiException && err.code === 404;
}

/** Who the API server says we are (authentication.k8s.io/v1 SelfSubjectReview): what a CSR will carry. */
export async function whoami(kc: k8s.KubeConfig): Promise<Identity> {
  try {
    const review = await kc.makeApiClient(k8s.AuthenticationV1Api).createSelfSubjectReview({
      body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    });
    const info = review.status?.userInfo;
    if (!info?.username) throw new DrawbridgeError('KUBE_ERROR', 'the API server did not say who you are');
    return { user: info.username, groups: info.groups ?? [], source: 'certificate' };
  } catch (err) {
    throw kubeError(err, 'asking the API server who you are (SelfSubjectReview)');
  }
}

export type Kind = 'databases' | 'accessroles' | 'databaseusers';

/** Lists Drawbridge objects in `namespace`, or in every namespace when it is undefined. */
export async function listObjects(
  kc: k8s.KubeConfig,
  plural: Kind,
  namespace?: string,
  labelSelector?: string,
): Promise<unknown[]> {
  const api = kc.makeApiClient(k8s.CustomObjectsApi);
  const query = { group: GROUP, version: VERSION, plural, ...(labelSelector ? { labelSelector } : {}) };
  try {
    const list = (
      namespace === undefined
        ? await api.listClusterCustomObject(query)
        : await api.listNamespacedCustomObject({ ...query, namespace })
    ) as { items: unknown[] };
    return list.items;
  } catch (err) {
    throw kubeError(err, `listing ${plural}${namespace ? ` in namespace ${namespace}` : ''}`);
  }
}

export async function getDatabase(target: KubeTarget, name: string): Promise<Database> {
  const api = target.kc.makeApiClient(k8s.CustomObjectsApi);
  try {
    const obj = await api.getNamespacedCustomObject({
      group: GROUP,
      version: VERSION,
      namespace: target.namespace,
      plural: 'databases',
      name,
    });
    return Database.parse(obj);
  } catch (err) {
    if (isNotFound(err)) {
      throw new DrawbridgeError(
        'INVALID_CONFIG',
        `database ${target.namespace}/${name} not found`,
        'kubectl db ls lists the databases you can reach (pass -n NAMESPACE for another namespace)',
      );
    }
    throw kubeError(err, `reading database ${target.namespace}/${name}`);
  }
}
