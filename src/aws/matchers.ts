// Discovery matchers (controller config / Helm values `aws.matchers`, schema in api/controller-config.ts):
// which AWS databases to enrol.
import type { AwsMatcher } from '../api/controller-config.js';
import type { AwsType } from '../api/database.js';

/**
 * `*` and `?` globs, anchored, matched without a regex: the value may be a Database's spec.aws.region,
 * which a tenant writes at any length, and a backtracking regex of an admin's `*-*-*` took 4 s on 3,000
 * characters (cubic) of the controller's one event loop. Greedy, going back only to the last star:
 * at most value × pattern steps.
 */
export function globMatch(pattern: string, value: string): boolean {
  let p = 0;
  let v = 0;
  let star = -1;
  let resume = 0;
  while (v < value.length) {
    const c = pattern[p];
    if (c === '*') {
      star = p++;
      resume = v;
    } else if (c !== undefined && (c === '?' || c === value[v])) {
      p++;
      v++;
    } else if (star >= 0) {
      p = star + 1;
      v = ++resume;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/** True when every tag selector of the matcher is satisfied by `tags`. */
export function tagsMatch(selectors: AwsMatcher['tags'], tags: Record<string, string>): boolean {
  return Object.entries(selectors).every(([key, want]) => {
    const patterns = Array.isArray(want) ? want : [want];
    if (key === '*')
      return patterns.includes('*') || Object.values(tags).some((v) => patterns.some((p) => globMatch(p, v)));
    const value = tags[key];
    return value !== undefined && patterns.some((p) => globMatch(p, value));
  });
}

/** The matcher selects every database of its types in its regions (no tag filter). */
export function matchesAll(m: AwsMatcher): boolean {
  return Object.entries(m.tags).every(
    ([k, v]) => k === '*' && (Array.isArray(v) ? v.includes('*') : v === '*'),
  );
}

export function accountOfArn(arn: string | undefined): string | undefined {
  return arn?.split(':')[4] || undefined;
}

export function coversRegion(m: AwsMatcher, type: AwsType, region: string): boolean {
  return m.types.includes(type) && m.regions.some((r) => r === '*' || globMatch(r, region));
}
