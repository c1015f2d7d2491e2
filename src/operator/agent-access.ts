// Agents verify workload tokens with TokenReview, a cluster-scoped API that a namespaced RoleBinding
// cannot grant. One ClusterRoleBinding lists every agent's ServiceAccount; this reconciler keeps its
// subjects equal to the Databases that exist (a single key: the binding is one object), and deletes it
// when none does.
//
// Outcomes (see controller.ts): resolves when the binding matches; API errors are retried.
import type { Reconciler } from './controller.js';
import { containsDesired } from '../kube/subset.js';
import type { KubeObject } from '../kube/types.js';
import type { ObjectCache, ObjectWriter } from '../kube/writer.js';
import { LABEL_MANAGED_BY, MANAGED_BY, agentName } from './names.js';

export const TOKENREVIEW_ROLE = 'drawbridge-agent-tokenreview';
/** The one key this reconciler is enqueued with. */
export const AGENT_ACCESS_KEY = 'tokenreview-binding';

const labels = { [LABEL_MANAGED_BY]: MANAGED_BY };

function tokenReviewRole(): KubeObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRole',
    metadata: { name: TOKENREVIEW_ROLE, labels },
    rules: [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }],
  };
}

export function tokenReviewBinding(databases: readonly KubeObject[]): KubeObject {
  const subjects = databases
    .filter((d) => !d.metadata.deletionTimestamp)
    .map((d) => ({
      kind: 'ServiceAccount',
      name: agentName(d.metadata.name),
      namespace: d.metadata.namespace!,
    }))
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name));
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'ClusterRoleBinding',
    metadata: { name: TOKENREVIEW_ROLE, labels },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: TOKENREVIEW_ROLE },
    subjects,
  };
}

export class AgentAccessReconciler implements Reconciler {
  readonly name = 'agent-tokenreview-binding';
  private roleApplied = false;

  constructor(
    private readonly databases: ObjectCache,
    private readonly bindings: ObjectCache,
    private readonly writer: ObjectWriter,
  ) {}

  async reconcile(): Promise<void> {
    if (!this.roleApplied) {
      await this.writer.apply(tokenReviewRole());
      this.roleApplied = true;
    }
    const desired = tokenReviewBinding(this.databases.list());
    const live = this.bindings.get(TOKENREVIEW_ROLE);
    // No agents, no binding: once the last Database is gone (as before helm uninstall) none is left behind.
    if (!(desired.subjects as unknown[]).length) {
      if (live) await this.writer.delete('ClusterRoleBinding', TOKENREVIEW_ROLE);
      return;
    }
    if (!live || !containsDesired(desired, live)) await this.writer.apply(desired);
  }
}
