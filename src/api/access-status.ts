// Status vocabulary of AccessRole and DatabaseUser: condition types and reasons are constants people
// and tools (alerts, Argo CD health checks) can match on.

export const ACCESS_CONDITION = {
  /** The object itself is well-formed: schema, patterns, templates. */
  Valid: 'Valid',
  /** It does what it says: valid, and (DatabaseUser) every role it names exists and is valid. */
  Ready: 'Ready',
} as const;

export const ACCESS_REASON = {
  Valid: 'Valid',
  /** The spec fails the schema (an object stored before the CRD checked it, or a zod-only rule). */
  InvalidSpec: 'InvalidSpec',
  /** A label, user or name pattern is not a valid regular expression or mixes styles. */
  InvalidPattern: 'InvalidPattern',
  /** A `{{...}}` value is not a template the access engine expands. */
  InvalidTemplate: 'InvalidTemplate',
  RolesFound: 'RolesFound',
  RoleNotFound: 'RoleNotFound',
  RoleInvalid: 'RoleInvalid',
} as const;
export type AccessReason = (typeof ACCESS_REASON)[keyof typeof ACCESS_REASON];
