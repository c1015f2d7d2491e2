// Discovery matchers (controller config / Helm values `aws.matchers`, schema in api/controller-config.ts):
// which AWS databases to enrol.
import type { AwsMatcher } from '../api/controller-config.js';
import type { AwsType } from '../api/database.js';

/** `*` and `?` globs, anchored. */
function globMatch(pattern: string, value: string): boolean {
  const re = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${re}$`).test(value);
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
