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

/**
 * A YAML syntax error named by its place alone. The YAML library's own message quotes the offending
 * line, and a standalone agent's config holds Secrets: a stray quote on a password line would put the
 * password into the error, which the agent logs. Parse with `prettyErrors: false` for `pos`.
 */
export function yamlSyntaxError(where: string, text: string, err: unknown): ValidationError {
  const { message, pos } = err as { message: string; pos?: [number, number] };
  const before = pos ? text.slice(0, pos[0]).split('\n') : undefined;
  const place = before ? ` at line ${before.length}, column ${before.at(-1)!.length + 1}` : '';
  return new ValidationError(`${where}: YAML syntax error${place}: ${message}`, [message]);
}
