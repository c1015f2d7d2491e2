// Value and label matching shared by every rule field: literal, `*`, glob (`prod-*`, `db?`), or an
// anchored regular expression (`^orders-(eu|us)$`), as in Teleport roles.
//
// Patterns come from AccessRoles (any namespace's, in the controller) and are matched against values a
// tenant or a client chooses (labels, CSR annotations, the database user of a startup packet). V8's
// default engine backtracks: `^(a+)+b$` against 40 a's, or a glob `a*a*…a*b`, runs for hours and blocks
// the whole process (every tenant's CSRs and reconciles, or every session of an agent). So every pattern
// runs on V8's linear-time engine (the `l` flag), which, like Go's RE2 that Teleport and CEL use, has no
// backreferences or lookarounds; it also refuses counted repetitions above {16}. A pattern it refuses
// is invalid: AccessRole status names it, an allow rule's value matches nothing, a deny rule's
// matches everything (deny wins even when it cannot be read).
import v8 from 'node:v8';

/** What an invalid pattern does: `skip` (allow rules: grants nothing) or `match` (deny rules: denies). */
export type OnInvalid = 'skip' | 'match';

type Matcher = ((value: string) => boolean) | { invalid: string };

/** Distinct patterns kept compiled; past this the cache starts again (patterns change with traits). */
const CACHE_LIMIT = 10_000;
const compiled = new Map<string, Matcher>();

/** V8's flag for its linear-time engine (not in the ECMAScript standard, hence not a literal). */
const LINEAR: string = 'l';

function linear(source: string): RegExp {
  try {
    return new RegExp(source, LINEAR);
  } catch (err) {
    // The flag is off by default (an "experimental" engine, shipped since Node 16); turn it on once.
    if (!(err instanceof SyntaxError) || !/flags/i.test(err.message)) throw err;
    v8.setFlagsFromString('--enable-experimental-regexp-engine');
    return new RegExp(source, LINEAR);
  }
}

function compile(pattern: string): Matcher {
  if (pattern === '*') return () => true;
  if (pattern.startsWith('^') && pattern.endsWith('$')) {
    try {
      const re = linear(pattern);
      return (v) => re.test(v);
    } catch (err) {
      return { invalid: (err as Error).message.replace(/^Invalid regular expression: /, '') };
    }
  }
  if (pattern.includes('*') || pattern.includes('?')) {
    const body = pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.');
    const re = linear(`^${body}$`);
    return (v) => re.test(v);
  }
  return (v) => v === pattern;
}

function matcher(pattern: string): Matcher {
  let m = compiled.get(pattern);
  if (!m) {
    if (compiled.size >= CACHE_LIMIT) compiled.clear();
    m = compile(pattern);
    compiled.set(pattern, m);
  }
  return m;
}

/** Why `pattern` cannot be evaluated (a regex the linear engine refuses, or a broken one), or undefined. */
export function patternError(pattern: string): string | undefined {
  const m = matcher(pattern);
  return typeof m === 'function' ? undefined : m.invalid;
}

function matchValue(pattern: string, value: string, onInvalid: OnInvalid): boolean {
  const m = matcher(pattern);
  return typeof m === 'function' ? m(value) : onInvalid === 'match';
}

/** The first pattern matching `value`, or undefined. */
export function matchAny(
  patterns: readonly string[],
  value: string,
  onInvalid: OnInvalid = 'skip',
): string | undefined {
  return patterns.find((p) => matchValue(p, value, onInvalid));
}

/**
 * Every key of `selector` must match a label of the database (AND); a list of values means any of them
 * (OR). The key `*` with value `*` matches any database, even one without labels. An empty selector
 * matches nothing, so a rule never grants access by omission.
 */
export function matchLabels(
  selector: Record<string, readonly string[]>,
  labels: Record<string, string>,
  onInvalid: OnInvalid = 'skip',
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
    if (!matchAny(values, actual, onInvalid)) {
      return { matched: false, mismatch: `label ${key}=${actual} is not one of ${JSON.stringify(values)}` };
    }
  }
  return { matched: true };
}
