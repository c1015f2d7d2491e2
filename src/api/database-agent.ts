// spec.agent of a Database: how its agent pods and Service run. The pod settings (AgentPodSettings) are
// also the chart-wide defaults (controller config agents.pod, Helm values agents.pod); a Database's
// own values win, field by field.
import { z } from 'zod';
import { AgentLimitsSpec } from './limits.js';
import { type CelRule, celRules } from './meta.js';

const stringMap = (description: string) => z.record(z.string(), z.string()).optional().describe(description);

/** Kubernetes core types passed to the pod unchanged; the API server checks them when the Deployment is applied. */
const kubeObject = (description: string) =>
  z.record(z.string(), z.unknown()).meta({ 'x-kubernetes-preserve-unknown-fields': true, description });

/** resource.Quantity as Kubernetes writes it: `1`, `500m`, `256Mi`, `1.5Gi`. */
const QUANTITY =
  /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;
export const quantity = z
  .union([
    z.number().int().nonnegative(),
    z.string().regex(QUANTITY, 'must be a quantity such as 500m, 1 or 256Mi'),
  ])
  .meta({ 'x-kubernetes-int-or-string': true });

const resourceList = (what: string) =>
  z
    .record(z.string(), quantity)
    .optional()
    .describe(`${what}, e.g. {cpu: 500m, memory: 256Mi}; numbers such as cpu: 1 are accepted.`);

const Toleration = z.object({
  key: z
    .string()
    .optional()
    .describe('Taint key to tolerate; empty with operator Exists tolerates every taint.'),
  operator: z.enum(['Exists', 'Equal']).optional().describe('Equal (the default) or Exists.'),
  value: z.string().optional().describe('Taint value, for operator Equal.'),
  effect: z
    .enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute'])
    .optional()
    .describe('Taint effect to tolerate; empty tolerates every effect.'),
  tolerationSeconds: z.number().int().optional().describe('NoExecute: how long the pod stays once tainted.'),
});

const TopologySpreadConstraint = z.object({
  maxSkew: z.number().int().min(1).describe('How uneven the spread may be.'),
  topologyKey: z.string().min(1).describe('Node label to spread over, e.g. topology.kubernetes.io/zone.'),
  whenUnsatisfiable: z
    .enum(['DoNotSchedule', 'ScheduleAnyway'])
    .default('ScheduleAnyway')
    .describe('DoNotSchedule or ScheduleAnyway (the default).'),
  labelSelector: kubeObject("Pods to count; defaults to this Database's agent pods.").optional(),
});

const upTo64 = z.number().int().min(1).max(64);

/** Pod and Service settings: per Database in spec.agent, and chart-wide defaults in agents.pod. */
export const agentPodShape = {
  workers: upTo64
    .optional()
    .describe(
      'Agent processes per pod, sharing its port. Default: the whole CPUs of resources.limits.cpu (at least 1), ' +
        "else the node's CPUs; set a CPU limit or this. 1 runs the agent as a single process.",
    ),
  semiSpaceMB: upTo64
    .optional()
    .describe(
      "Upper bound of each agent process's V8 young-generation semi-spaces, in MB (node --max-semi-space-size; " +
        'V8 grows them to it only under allocation pressure). Larger: less garbage-collection CPU per command ' +
        'when busy (the Redis Cluster path most), for up to 3x this in memory per process under load. ' +
        "Default: the drawbridge launcher's (README, Performance).",
    ),
  resources: z
    .object({
      requests: resourceList('What the scheduler reserves for each agent container'),
      limits: resourceList('The most each agent container may use'),
    })
    .optional()
    .describe('Compute resources of the agent container.'),
  imagePullSecrets: z
    .array(z.object({ name: z.string().min(1).describe('A docker-registry Secret in this namespace.') }))
    .optional()
    .describe('Secrets to pull the agent image with.'),
  nodeSelector: stringMap('Node labels the agent pods must run on.'),
  tolerations: z.array(Toleration).optional().describe('Taints the agent pods tolerate.'),
  affinity: kubeObject('A core/v1 Affinity for the agent pods (node, pod and anti-affinity).').optional(),
  topologySpreadConstraints: z
    .array(TopologySpreadConstraint)
    .optional()
    .describe('How the agent replicas spread over zones or nodes.'),
  priorityClassName: z.string().optional().describe('PriorityClass of the agent pods.'),
  podLabels: stringMap(
    'Extra labels on the agent pods (the selector labels cannot be overridden). Keys the platform forbids ' +
      "(log collectors' switches, Helm agents.forbiddenPodMetadataKeys) are not applied: PodMetadataAllowed says which.",
  ),
  podAnnotations: stringMap(
    "Extra annotations on the agent pods. Keys the platform forbids (log collectors' switches such as " +
      'fluentbit.io/exclude, Helm agents.forbiddenPodMetadataKeys) are not applied: PodMetadataAllowed says which.',
  ),
  serviceAnnotations: stringMap(
    "Annotations on the agent's Service, e.g. service.beta.kubernetes.io/aws-load-balancer-scheme: internal.",
  ),
  loadBalancerClass: z
    .string()
    .optional()
    .describe('serviceType LoadBalancer: the load balancer implementation, e.g. service.k8s.aws/nlb.'),
};
export const AgentPodSettings = z.object(agentPodShape);

/**
 * Pod label and annotation keys a Database may not put on its agent pods, whose stdout is the audit
 * log: log collectors read these to skip a pod's logs or to reshape them (Fluent Bit, Filebeat and
 * Elastic Agent hints, Datadog, Vector, Splunk, Sumo Logic). Globs: `*` is any run of characters.
 * The controller's default (Helm agents.forbiddenPodMetadataKeys).
 */
export const DEFAULT_FORBIDDEN_POD_METADATA_KEYS: readonly string[] = [
  'fluentbit.io/*',
  'co.elastic.logs*',
  'co.elastic.hints*',
  'ad.datadoghq.com/*',
  'vector.dev/*',
  'splunk.com/*',
  'sumologic.com/*',
];

/** A label or annotation key, or a glob of them (`*` any run of characters). */
export const podMetadataKeyGlob = z
  .string()
  .regex(
    /^[A-Za-z0-9*]([A-Za-z0-9._/*-]{0,315})$/,
    'must be a label or annotation key, `*` standing for any run of characters (e.g. fluentbit.io/*)',
  );
export type AgentPodSettings = z.infer<typeof AgentPodSettings>;

const LOAD_BALANCER_CLASS: CelRule = {
  rule: "!has(self.loadBalancerClass) || self.serviceType == 'LoadBalancer'",
  message: 'loadBalancerClass needs serviceType: LoadBalancer',
  fieldPath: '.loadBalancerClass',
};

export const DatabaseAgent = z
  .object({
    replicas: z
      .number()
      .int()
      .min(0)
      .max(100)
      .default(1)
      .describe('Agent pods; more than 1 adds a PodDisruptionBudget. 0 stops serving.'),
    serviceType: z
      .enum(['ClusterIP', 'NodePort', 'LoadBalancer'])
      .default('ClusterIP')
      .describe("Type of the agent's Service: ClusterIP (the default), NodePort or LoadBalancer."),
    serviceAccountAnnotations: stringMap(
      "Annotations on the agent's ServiceAccount, e.g. eks.amazonaws.com/role-arn: the IAM role (EKS IRSA) " +
        'the agent of an AWS Database signs in with. Overrides the controller-wide agents.aws.roleArn.',
    ),
    limits: AgentLimitsSpec.optional(),
    ...agentPodShape,
  })
  .refine((a) => !a.loadBalancerClass || a.serviceType === 'LoadBalancer', {
    path: ['loadBalancerClass'],
    message: LOAD_BALANCER_CLASS.message,
  })
  .meta(celRules([LOAD_BALANCER_CLASS]))
  .describe("The agent's pods and Service; unset pod settings come from the chart's agents.pod defaults.");
export type DatabaseAgent = z.infer<typeof DatabaseAgent>;
