// Kubernetes object envelope shared by every Drawbridge resource.
import { z } from 'zod';

export const GROUP = 'drawbridge.dev';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

/** DNS-1123 subdomain, as Kubernetes requires for object names. */
export const objectName = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'must be a lowercase DNS name (a-z, 0-9, "-", ".")');

export const ObjectMeta = z.object({
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
export type ObjectMeta = z.infer<typeof ObjectMeta>;

/** metav1.Condition. */
export const Condition = z.object({
  type: z.string(),
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string(),
  message: z.string(),
  lastTransitionTime: z.string(),
  observedGeneration: z.number().int().optional(),
});
export type Condition = z.infer<typeof Condition>;

/** A key in a Secret in the object's namespace. */
export const SecretKeyRef = z.object({ name: objectName, key: z.string().min(1) });
export const SecretRef = z.object({ name: objectName });

/** Go-style durations as Kubernetes and Teleport write them: `8h`, `30m`, `1h30m`, `90s`. */
export const duration = z
  .string()
  .regex(/^(\d+(\.\d+)?(h|m|s|ms))+$/, 'must be a duration such as "8h", "30m" or "1h30m"');

export function parseDuration(text: string): number {
  let ms = 0;
  for (const m of text.matchAll(/(\d+(?:\.\d+)?)(ms|h|m|s)/g)) {
    const n = Number(m[1]);
    ms += n * { h: 3_600_000, m: 60_000, s: 1000, ms: 1 }[m[2] as 'h' | 'm' | 's' | 'ms'];
  }
  return ms;
}

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
