// The agent pod and Service settings a Database gets: its spec.agent over the chart-wide defaults
// (agents.pod), field by field. Maps (labels, annotations, nodeSelector) merge key by key with the
// Database winning; lists and objects (tolerations, affinity) are taken whole from whichever sets them.
import { type AgentPodSettings, type DatabaseAgent, agentPodShape } from '../../api/database-agent.js';

type Settings = AgentPodSettings;
const MAPS = ['nodeSelector', 'podLabels', 'podAnnotations', 'serviceAnnotations'] as const;

export function effectivePodSettings(defaults: Settings | undefined, agent: DatabaseAgent): Settings {
  const out: Settings = { ...defaults };
  for (const key of Object.keys(agentPodShape) as (keyof Settings)[]) {
    if (agent[key] !== undefined) (out as Record<string, unknown>)[key] = agent[key];
  }
  for (const key of MAPS) {
    if (defaults?.[key] && agent[key]) out[key] = { ...defaults[key], ...agent[key] };
  }
  return out;
}

/** resource.Quantity values as strings, the form the API server stores them in (so applies compare equal). */
function quantities(list: Record<string, string | number> | undefined): Record<string, string> | undefined {
  return list && Object.fromEntries(Object.entries(list).map(([k, v]) => [k, String(v)]));
}

/** Pod spec fields from the settings; `selector` is the agent pods' labels, the default spread selector. */
export function podSpecFields(s: Settings, selector: Record<string, string>): Record<string, unknown> {
  const spread = s.topologySpreadConstraints?.map((c) => ({
    ...c,
    labelSelector: c.labelSelector ?? { matchLabels: selector },
  }));
  return {
    ...(s.imagePullSecrets ? { imagePullSecrets: s.imagePullSecrets } : {}),
    ...(s.nodeSelector ? { nodeSelector: s.nodeSelector } : {}),
    ...(s.tolerations ? { tolerations: s.tolerations } : {}),
    ...(s.affinity ? { affinity: s.affinity } : {}),
    ...(spread ? { topologySpreadConstraints: spread } : {}),
    ...(s.priorityClassName ? { priorityClassName: s.priorityClassName } : {}),
  };
}

export function containerResources(s: Settings): Record<string, unknown> | undefined {
  if (!s.resources) return undefined;
  const requests = quantities(s.resources.requests);
  const limits = quantities(s.resources.limits);
  return { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) };
}
