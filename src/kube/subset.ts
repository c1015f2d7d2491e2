// "Does the live object already say what we want?" Server-side apply makes re-applying harmless, but
// thousands of no-op applies still cost API calls; a reconcile applies only when a field we set
// differs. Fields the server or other managers add are ignored, so there is no fight over them.

/** True when every field of `desired` is present and equal in `actual` (arrays element-wise, same length). */
export function containsDesired(desired: unknown, actual: unknown): boolean {
  if (desired === null || typeof desired !== 'object') return desired === actual;
  if (Array.isArray(desired)) {
    return (
      Array.isArray(actual) &&
      actual.length === desired.length &&
      desired.every((d, i) => containsDesired(d, actual[i]))
    );
  }
  if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) return false;
  const a = actual as Record<string, unknown>;
  return Object.entries(desired as Record<string, unknown>).every(
    ([k, v]) => v === undefined || containsDesired(v, a[k]),
  );
}
