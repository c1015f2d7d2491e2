// AccessRole (what may be reached) and DatabaseUser (who gets which roles).
import { z } from 'zod';
import { duration, objectName, resource } from './meta.js';

/** Label values: a literal, `*`, a glob such as `prod-*`, or an anchored regex `^...$`. */
const labelValues = z.union([z.string(), z.array(z.string()).min(1)]);

export const AccessRule = z.object({
  databaseLabels: z.record(z.string(), labelValues).optional(),
  databaseUsers: z.array(z.string()).optional(),
  databaseNames: z.array(z.string()).optional(),
  /** Redis commands (`get`, `config|get`) or ACL categories (`@read`, `@dangerous`). */
  redisCommands: z.array(z.string()).optional(),
});
export type AccessRule = z.infer<typeof AccessRule>;

export const AllowRule = AccessRule.extend({
  /**
   * Redis scripts and functions (EVAL*, FCALL*, FUNCTION LOAD|RESTORE) run commands inside the server
   * that the agent cannot check; they are refused unless the person's roles allow every command (and,
   * on a standalone server, where a script could SELECT past the Database's DB number, not even then)
   * or a role allowing the session sets this. Scripts then do whatever the backend ACL user may.
   */
  redisScripting: z.boolean().optional(),
});
export type AllowRule = z.infer<typeof AllowRule>;

export const AccessRoleSpec = z.object({
  allow: AllowRule.default({}),
  deny: AccessRule.default({}),
  options: z
    .object({
      maxSessionTTL: duration.default('8h'),
    })
    .default({ maxSessionTTL: '8h' }),
});

export const AccessRole = resource('AccessRole', AccessRoleSpec, z.object({}).passthrough());
export type AccessRole = z.infer<typeof AccessRole>;
export type AccessRoleSpec = z.infer<typeof AccessRoleSpec>;

export const Subject = z
  .object({
    kind: z.enum(['User', 'Group', 'ServiceAccount']),
    name: z.string().min(1),
    namespace: z.string().optional(),
  })
  .refine((s) => s.kind !== 'ServiceAccount' || !!s.namespace, {
    message: 'a ServiceAccount subject needs a namespace',
    path: ['namespace'],
  });
export type Subject = z.infer<typeof Subject>;

export const DatabaseUserSpec = z.object({
  subjects: z.array(Subject).min(1),
  roles: z.array(objectName).min(1),
  traits: z
    .object({
      dbUsers: z.array(z.string()).optional(),
      dbNames: z.array(z.string()).optional(),
    })
    .catchall(z.array(z.string()))
    .default({}),
});

export const DatabaseUser = resource('DatabaseUser', DatabaseUserSpec, z.object({}).passthrough());
export type DatabaseUser = z.infer<typeof DatabaseUser>;
export type DatabaseUserSpec = z.infer<typeof DatabaseUserSpec>;
