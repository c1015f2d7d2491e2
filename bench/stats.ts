// Summaries of repeated benchmark runs. On a shared machine one run says little: each comparison runs
// several times, alternating targets, and is reported as its median with the spread (min–max).

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { median: NaN, min: NaN, max: NaN };
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]! };
}

/** `median (min–max)`, each with `digits` decimals, the median padded to `width`. */
export function formatSpread(s: Spread, digits: number, width = 8): string {
  const f = (v: number) => v.toFixed(digits);
  return `${f(s.median).padStart(width)} (${f(s.min)}–${f(s.max)})`;
}
