// Kubernetes object envelope shared by every Drawbridge resource.
import { z } from 'zod';
import { API_VERSION, DURATION, DURATION_MESSAGE } from './runtime.js';

export { API_VERSION, GROUP, VERSION, parseDuration } from './runtime.js';

/** DNS-1123 subdomain, as Kubernetes requires for object names. */
export const objectName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lowercase DNS name (a-z, 0-9, "-", ".")');

const ObjectMeta = z.object({
  name: objectName,
  namespace: z.string().optional(),
  labels: z.record(z.string(), z.string()).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  uid: z.string().optional(),
  generation: z.number().int().optional(),
  resourceVersion: z.string().optional(),
  deletionTimestamp: z.string().optional(),
  finalizers: z.array(z.string()).optional(),
});
type ObjectMeta = z.infer<typeof ObjectMeta>;

/** metav1.Condition. */
export const Condition = z.object({
  type: z.string().describe('What this condition reports on, e.g. Ready.'),
  status: z.enum(['True', 'False', 'Unknown']).describe('True, False or Unknown.'),
  reason: z.string().describe('A CamelCase word saying why, stable enough for alerts and scripts.'),
  message: z.string().describe('What is wrong and how to fix it, for people.'),
  lastTransitionTime: z.string().describe('When status last changed (RFC 3339).'),
  observedGeneration: z
    .number()
    .int()
    .optional()
    .describe('The metadata.generation this condition was computed from.'),
});
export type Condition = z.infer<typeof Condition>;

/** Conditions as Kubernetes merges them: one entry per type (a list-map), so patches touch one entry. */
export const conditions = z
  .array(Condition)
  .optional()
  .meta({
    'x-kubernetes-list-type': 'map',
    'x-kubernetes-list-map-keys': ['type'],
    description: 'The latest observations of the object, one entry per condition type.',
  });

export const observedGeneration = z
  .number()
  .int()
  .optional()
  .describe('The metadata.generation the controller last acted on.');

/** A key in a Secret in the object's namespace. */
export const SecretKeyRef = z.object({
  name: objectName.describe("The Secret's name, in this object's namespace."),
  key: z.string().min(1).describe('The key within the Secret.'),
});
export const SecretRef = z.object({
  name: objectName.describe("The Secret's name, in this object's namespace."),
});

/** Metadata the API server validates: `x-kubernetes-validations` (CEL) entries on a schema. */
export interface CelRule {
  rule: string;
  /** Shown when the rule fails; messageExpression (CEL, giving a string) when set takes precedence. */
  message: string;
  messageExpression?: string;
  /** Where the error points, relative to the schema the rule sits on (e.g. `.uri`). */
  fieldPath?: string;
}
export const celRules = (rules: CelRule[]) => ({ 'x-kubernetes-validations': rules });

/** Go-style durations as Kubernetes and Teleport write them: `8h`, `30m`, `1h30m`, `90s`. */
export const duration = z.string().regex(DURATION, DURATION_MESSAGE);

export function resource<K extends string, S extends z.ZodTypeAny, St extends z.ZodTypeAny>(
  kind: K,
  spec: S,
  status: St,
) {
  return z.object({
    apiVersion: z.literal(API_VERSION),
    kind: z.literal(kind),
    metadata: ObjectMeta,
    spec,
    status: status.optional(),
  });
}
