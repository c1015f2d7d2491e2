// Pod labels and annotations a Database may not put on its agent pods (Helm agents.forbiddenPodMetadataKeys).
// The agent's stdout is the audit log, and log collectors decide from pod metadata whether to ship it
// (`fluentbit.io/exclude`, `co.elastic.logs/enabled`, Vector's `vector.dev/exclude` label) and how to
// parse it: a tenant, who owns the Database, must not be able to switch off the audit of its own
// sessions. The agent is still deployed, without those keys (the audit is shipped and the tenant's
// other settings apply; holding the whole roll-out back would keep nothing safer), and the Database
// says which key was dropped and why. Keys on the live pod template that the controller did not
// ask for (an older release applied them, or someone edited the Deployment) are removed too.
import { DEFAULT_FORBIDDEN_POD_METADATA_KEYS, type DatabaseAgent } from '../../api/database-agent.js';
import { CONDITION, REASON } from '../../api/database-status.js';
import { matchAny } from '../../authz/match.js';
import type { KubeObject } from '../../kube/types.js';
import type { ConditionState } from './conditions.js';

const FIELDS = ['podLabels', 'podAnnotations'] as const;
type Field = (typeof FIELDS)[number];
/** Where each field lands on the pod template's metadata. */
const TEMPLATE_FIELD = { podLabels: 'labels', podAnnotations: 'annotations' } as const;
/** The chart value the platform sets, named in every message so the tenant knows who decides. */
export const FORBIDDEN_KEYS_VALUE = 'agents.forbiddenPodMetadataKeys';

export interface ForbiddenKey {
  field: Field;
  key: string;
  /** The glob that matched. */
  pattern: string;
}

/** The platform's globs; unset (a controller run without a config file) is the default list, never none. */
export function forbiddenGlobs(configured: readonly string[] | undefined): readonly string[] {
  return configured ?? DEFAULT_FORBIDDEN_POD_METADATA_KEYS;
}

/** The keys of spec.agent.podLabels / podAnnotations that the globs forbid. */
export function forbiddenPodMetadata(agent: DatabaseAgent, globs: readonly string[]): ForbiddenKey[] {
  const out: ForbiddenKey[] = [];
  for (const field of FIELDS) {
    for (const key of Object.keys(agent[field] ?? {})) {
      // 'match': a glob the engine cannot read forbids everything rather than nothing.
      const pattern = matchAny(globs, key, 'match');
      if (pattern !== undefined) out.push({ field, key, pattern });
    }
  }
  return out;
}

/** spec.agent without the forbidden keys: what the agent pods get. */
export function withoutForbidden(agent: DatabaseAgent, forbidden: readonly ForbiddenKey[]): DatabaseAgent {
  if (!forbidden.length) return agent;
  const out = { ...agent };
  for (const field of FIELDS) {
    const drop = new Set(forbidden.filter((f) => f.field === field).map((f) => f.key));
    if (drop.size)
      out[field] = Object.fromEntries(Object.entries(agent[field]!).filter(([k]) => !drop.has(k)));
  }
  return out;
}

type TemplateMeta = { labels?: Record<string, string>; annotations?: Record<string, string> };

function templateMeta(deployment: KubeObject | undefined): TemplateMeta {
  const spec = deployment?.spec as { template?: { metadata?: TemplateMeta } } | undefined;
  return spec?.template?.metadata ?? {};
}

/**
 * A JSON merge patch (and the keys it removes) removing the forbidden keys on the live Deployment's pod template that the desired
 * one lacks, or undefined. Server-side apply leaves keys another field manager set (a `kubectl edit`),
 * and skips them when what the controller wants is already there; a merge patch to null removes them
 * whoever set them. Keys the platform's agents.pod sets are in the desired template and stay.
 */
export function strayForbiddenPatch(
  live: KubeObject | undefined,
  desired: KubeObject,
  globs: readonly string[],
): { patch: object; keys: string[] } | undefined {
  const have = templateMeta(live);
  const want = templateMeta(desired);
  const metadata: Record<string, Record<string, null>> = {};
  const keys: string[] = [];
  for (const field of Object.values(TEMPLATE_FIELD)) {
    for (const key of Object.keys(have[field] ?? {})) {
      if (want[field]?.[key] === undefined && matchAny(globs, key, 'match') !== undefined) {
        (metadata[field] ??= {})[key] = null;
        keys.push(key);
      }
    }
  }
  return keys.length ? { patch: { spec: { template: { metadata } } }, keys } : undefined;
}

/** PodMetadataAllowed: False naming each dropped key, the glob and the chart value. */
export function podMetadataCondition(forbidden: readonly ForbiddenKey[]): ConditionState {
  const type = CONDITION.PodMetadataAllowed;
  if (!forbidden.length) {
    return {
      type,
      status: 'True',
      reason: REASON.PodMetadataAllowed,
      message: 'spec.agent pod labels and annotations are applied',
    };
  }
  const keys = forbidden.map((f) => `spec.agent.${f.field}["${f.key}"] (matches "${f.pattern}")`);
  return {
    type,
    status: 'False',
    reason: REASON.PodMetadataForbidden,
    message:
      `not applied to the agent pods: ${keys.join(', ').slice(0, 600)}; the agent's stdout is the audit log ` +
      `and the platform forbids keys that tell log collectors to skip or reshape it (Helm value ` +
      `${FORBIDDEN_KEYS_VALUE}); remove them from the Database, or ask the platform team`,
  };
}
