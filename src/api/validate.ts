// Validation at the edge: zod issues become one error that names the source, the document, the field
// path and what to write instead.
import type { z } from 'zod';
import { DrawbridgeError } from '../errors.js';

export class ValidationError extends DrawbridgeError {
  constructor(
    message: string,
    readonly issues: string[],
  ) {
    super('INVALID_CONFIG', message);
  }
}

export function formatIssue(issue: z.core.$ZodIssue): string {
  const path = issue.path.length ? issue.path.map(String).join('.') : '(document)';
  return `${path}: ${issue.message}`;
}

/** Parses `value` with `schema`, or throws a ValidationError naming `where` (e.g. "agent.yaml document 3 (Database orders)"). */
export function parseOrThrow<S extends z.ZodTypeAny>(schema: S, value: unknown, where: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.map(formatIssue);
  throw new ValidationError(`${where} is invalid:\n  - ${issues.join('\n  - ')}`, issues);
}
