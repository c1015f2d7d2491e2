// Value and label matching shared by every rule field: literal, `*`, glob (`prod-*`, `db?`), or an
// anchored regular expression (`^orders-(eu|us)$`), as in Teleport roles.

const compiled = new Map<string, (value: string) => boolean>();

function compile(pattern: string): (value: string) => boolean {
  if (pattern === '*') return () => true;
  if (pattern.startsWith('^') && pattern.endsWith('$')) {
    try {
      const re = new RegExp(pattern);
      return (v) => re.test(v);
    } catch {
      return () => false; // An invalid regex matches nothing rather than everything.
    }
  }
  if (pattern.includes('*') || pattern.includes('?')) {
    const body = pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.');
    const re = new RegExp(`^${body}$`);
    return (v) => re.test(v);
  }
  return (v) => v === pattern;
}

function matchValue(pattern: string, value: string): boolean {
  let fn = compiled.get(pattern);
  if (!fn) {
    fn = compile(pattern);
    compiled.set(pattern, fn);
  }
  return fn(value);
}

/** The first pattern matching `value`, or undefined. */
export function matchAny(patterns: readonly string[], value: string): string | undefined {
  return patterns.find((p) => matchValue(p, value));
}

/**
 * Every key of `selector` must match a label of the database (AND); a list of values means any of them
 * (OR). The key `*` with value `*` matches any database, even one without labels. An empty selector
 * matches nothing, so a rule never grants access by omission.
 */
export function matchLabels(
  selector: Record<string, readonly string[]>,
  labels: Record<string, string>,
): { matched: boolean; mismatch?: string } {
  const keys = Object.keys(selector);
  if (keys.length === 0) return { matched: false, mismatch: 'no databaseLabels' };
  for (const key of keys) {
    const values = selector[key]!;
    if (key === '*') {
      if (values.includes('*')) continue;
      return { matched: false, mismatch: `label selector "*" only accepts "*"` };
    }
    const actual = labels[key];
    if (actual === undefined) return { matched: false, mismatch: `database has no label "${key}"` };
    if (!matchAny(values, actual)) {
      return { matched: false, mismatch: `label ${key}=${actual} is not one of ${JSON.stringify(values)}` };
    }
  }
  return { matched: true };
}
