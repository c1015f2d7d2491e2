// Drawbridge objects as read from watches, validated with the same zod schemas the standalone agent
// uses (zod at the edge). An invalid object is logged once per version (an invalid AccessRole or
// DatabaseUser grants nothing); results are memoised per cached object, so re-reading unchanged
// caches costs no parsing.
import type { z } from 'zod';
import { API_VERSION } from '../api/meta.js';
import { formatIssue } from '../api/validate.js';
import type { Logger } from '../log.js';
import type { KubeObject } from './types.js';

/** Parses a cached object; list items arrive without apiVersion/kind, which the schemas require. */
export function parseAs<S extends z.ZodTypeAny>(schema: S, kind: string, obj: KubeObject) {
  return schema.safeParse({
    ...obj,
    apiVersion: obj.apiVersion ?? API_VERSION,
    kind: obj.kind ?? kind,
  }) as z.ZodSafeParseResult<z.output<S>>;
}

const memo = new WeakMap<object, unknown>();
const INVALID = Symbol('invalid');

export function parseMemo<S extends z.ZodTypeAny>(
  schema: S,
  kind: string,
  obj: KubeObject,
  log: Logger,
): z.output<S> | undefined {
  let v = memo.get(obj);
  if (v === undefined) {
    const r = parseAs(schema, kind, obj);
    if (r.success) v = r.data;
    else {
      v = INVALID;
      const { namespace, name } = obj.metadata;
      log.warn(
        { kind, namespace, name, issues: r.error.issues.map(formatIssue) },
        'ignoring an invalid object: it grants nothing until fixed',
      );
    }
    memo.set(obj, v);
  }
  return v === INVALID ? undefined : (v as z.output<S>);
}
