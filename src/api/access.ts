// AccessRole (what may be reached) and DatabaseUser (who gets which roles).
import { z } from 'zod';
import {
  type CelRule,
  celRules,
  conditions,
  duration,
  objectName,
  observedGeneration,
  resource,
} from './meta.js';

// Size bounds. The controller decides every namespace's CSRs against the roles of the Database's namespace,
// so an unbounded role (a tenant's 1.2 MB AccessRole cost 4.6 s per CSR) slows it for all. The generated
// CRDs carry these (maxItems, maxLength, maxProperties): the API server refuses a larger object with a
// message naming the field and the bound. Generous for real use: a PostgreSQL role name is at most 63
// bytes, a Kubernetes label value 63 characters, and Redis has about 240 commands.
/** A database user or database name, a pattern or a {{traits}} template. */
const NAME_MAX = 128;
const NAMES_MAX = 64;
const label = z.string().max(NAME_MAX);

/** Label values: a literal, `*`, a glob such as `prod-*`, or an anchored regex `^...$`. */
const labelValues = z
  .union([label, z.array(label).min(1).max(16)])
  // A string-or-list is no structural type: the CRD keeps the value open (CEL cannot type it either),
  // so these bounds are zod's, in the controller; the CRD bounds the number of keys.
  .describe('A value or a list of values: literal, `*`, a glob (`prod-*`) or an anchored regex (`^eu-.*$`).');
const names = z.array(z.string().max(NAME_MAX)).max(NAMES_MAX);

const templated = 'Trait templates such as {{traits.dbUsers}} expand per person.';

export const AccessRule = z.object({
  databaseLabels: z
    .record(z.string(), labelValues)
    .refine((labels) => Object.keys(labels).length <= 16, 'at most 16 label keys')
    .meta({ maxProperties: 16 })
    .optional()
    .describe("Databases whose metadata.labels match every key here; '*': '*' matches every Database."),
  databaseUsers: names
    .optional()
    .describe(`Database users (PostgreSQL roles, Redis ACL users) a session may log in as. ${templated}`),
  databaseNames: names.optional().describe(`PostgreSQL databases a session may open. ${templated}`),
  redisCommands: z
    .array(z.string().max(64))
    .max(512)
    .optional()
    .describe('Redis commands (`get`, `config|get`) or ACL categories (`@read`, `@dangerous`).'),
});
export type AccessRule = z.infer<typeof AccessRule>;

export const AllowRule = AccessRule.extend({
  /**
   * Redis scripts and functions (EVAL*, FCALL*, FUNCTION LOAD|RESTORE) run commands inside the server
   * that the agent cannot check; they are refused unless the person's roles allow every command (and,
   * on a standalone server, where a script could SELECT past the Database's DB number, not even then)
   * or a role allowing the session sets this. Scripts then do whatever the backend ACL user may.
   */
  redisScripting: z
    .boolean()
    .optional()
    .describe(
      'Allow Redis scripts and functions (EVAL, FCALL, FUNCTION LOAD), which run commands the agent cannot ' +
        "check, with the backend ACL user's rights; without it they are refused unless the roles allow every " +
        'command and the server is a Redis Cluster and a role sets redisServerWide (on a standalone server a ' +
        'script could SELECT another DB; on a cluster it could call CLUSTER MEET/SETSLOT).',
    ),
  /**
   * A standalone Redis server's DBs belong to Databases with other access rules; commands that act on
   * the whole server (CONFIG, ACL, CLIENT KILL, FLUSHALL, SHUTDOWN...) or show its other DBs are
   * refused there unless a role allowing the session sets this. On a Redis Cluster (one DB) it holds
   * back only what changes the node addresses the agent dials and logs in at (CLUSTER MEET/SETSLOT...,
   * CONFIG SET/GET, MODULE LOAD), and scripts, which could call those.
   */
  redisServerWide: z
    .boolean()
    .optional()
    .describe(
      'Allow, on a standalone Redis server, what acts on or shows every DB of the server (CONFIG, ACL, CLIENT ' +
        'KILL/PAUSE/UNBLOCK, FLUSHALL, SAVE, SHUTDOWN, DEBUG, keyspace notifications of other DBs...) as far as ' +
        'the command rules allow each command; without it they are refused and CLIENT LIST, INFO and PUBSUB ' +
        "CHANNELS show only this Database's DB. On a Redis Cluster: what changes the nodes the agent dials and " +
        'logs in at (CLUSTER MEET/FORGET/RESET/SETSLOT/ADDSLOTS/DELSLOTS/FAILOVER/REPLICATE, CONFIG SET, MODULE ' +
        'LOAD) or shows their passwords (CONFIG GET); without it these, and scripts, are refused.',
    ),
});
export type AllowRule = z.infer<typeof AllowRule>;

export const AccessRoleSpec = z
  .object({
    allow: AllowRule.default({}).describe(
      'What this role grants; every matcher in it must match. An empty allow grants nothing.',
    ),
    deny: AccessRule.default({}).describe(
      'What this role takes away, from every role a person holds. Deny wins.',
    ),
    options: z
      .object({
        maxSessionTTL: duration
          .default('8h')
          .describe(
            "Longest certificate (and session) this role allows, e.g. 8h; the smallest of a person's roles applies.",
          ),
      })
      .default({ maxSessionTTL: '8h' })
      .describe('Session options.'),
  })
  .describe('What may be reached: databases, database users and names, Redis commands.');

export const AccessRoleStatus = z
  .object({
    conditions,
    observedGeneration,
    users: z.number().int().optional().describe('DatabaseUsers in this namespace that hold this role.'),
    databases: z.number().int().optional().describe('Databases in this namespace this role may reach.'),
  })
  .describe('What the controller observed: conditions, and who and what this role reaches.');

export const AccessRole = resource('AccessRole', AccessRoleSpec, AccessRoleStatus);
export type AccessRole = z.infer<typeof AccessRole>;
export type AccessRoleSpec = z.infer<typeof AccessRoleSpec>;

const SUBJECT_RULES: CelRule[] = [
  {
    rule: "self.kind != 'ServiceAccount' || has(self.namespace)",
    message: "a ServiceAccount subject needs a namespace: add namespace: <the ServiceAccount's namespace>",
    fieldPath: '.namespace',
  },
  {
    rule: "self.kind == 'ServiceAccount' || !has(self.namespace)",
    message: 'namespace is for ServiceAccount subjects only: remove it from this User or Group subject',
    fieldPath: '.namespace',
  },
];

export const Subject = z
  .object({
    kind: z.enum(['User', 'Group', 'ServiceAccount']).describe('User, Group or ServiceAccount (as in RBAC).'),
    name: z
      .string()
      .min(1)
      .max(512)
      .describe('The user name or group (as in client certificates: CN, O), or the ServiceAccount name.'),
    namespace: z.string().max(63).optional().describe("ServiceAccount only: the ServiceAccount's namespace."),
  })
  .superRefine((s, ctx) => {
    if (s.kind === 'ServiceAccount' && !s.namespace)
      ctx.addIssue({ code: 'custom', path: ['namespace'], message: SUBJECT_RULES[0]!.message });
    if (s.kind !== 'ServiceAccount' && s.namespace !== undefined)
      ctx.addIssue({ code: 'custom', path: ['namespace'], message: SUBJECT_RULES[1]!.message });
  })
  .meta(celRules(SUBJECT_RULES));
export type Subject = z.infer<typeof Subject>;

export const DatabaseUserSpec = z
  .object({
    subjects: z.array(Subject).min(1).max(256).describe('Who this is: users, groups and ServiceAccounts.'),
    roles: z.array(objectName).min(1).max(32).describe('AccessRole names in this namespace.'),
    traits: z
      .record(z.string(), names)
      .refine((traits) => Object.keys(traits).length <= 16, 'at most 16 traits')
      .meta({ maxProperties: 16 })
      .default({})
      .describe(
        "Values for the roles' templates, any key: {{traits.dbUsers}} and {{traits.dbNames}} are the usual " +
          'ones, e.g. {dbUsers: [alice_ro], team: [payments]}.',
      ),
  })
  .describe('Who (subjects) gets which AccessRoles, with traits for their templates.');

export const DatabaseUserStatus = z
  .object({
    conditions,
    observedGeneration,
    databases: z.number().int().optional().describe('Databases in this namespace this user may reach.'),
  })
  .describe('What the controller observed: conditions (missing or invalid roles), what this user reaches.');

export const DatabaseUser = resource('DatabaseUser', DatabaseUserSpec, DatabaseUserStatus);
export type DatabaseUser = z.infer<typeof DatabaseUser>;
export type DatabaseUserSpec = z.infer<typeof DatabaseUserSpec>;
