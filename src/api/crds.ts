// CustomResourceDefinitions generated from the zod schemas, so the API server and the agent validate
// against one source of truth. `make crds` writes them; a unit test fails when crds/ is stale.
import { z } from 'zod';
import { stringify } from 'yaml';
import { ACCESS_CONDITION } from './access-status.js';
import { AccessRoleSpec, AccessRoleStatus, DatabaseUserSpec, DatabaseUserStatus } from './access.js';
import { CONDITION } from './database-status.js';
import { DatabaseSpec, DatabaseStatus } from './database.js';
import { GROUP, VERSION } from './meta.js';

type JSONSchema = Record<string, unknown>;

interface CrdInput {
  kind: string;
  plural: string;
  shortNames: string[];
  /** What `kubectl explain KIND` shows. */
  description: string;
  spec: z.ZodTypeAny;
  status?: z.ZodTypeAny;
  columns: { name: string; type: string; jsonPath: string; priority?: number }[];
}

const ready = (type: string) => `.status.conditions[?(@.type=="${type}")]`;

// Short names avoid `db`, `databases` and `users`, which other operators' resources (CloudNativePG's
// databases.postgresql.cnpg.io, ...) also answer to; `kubectl get drawbridge` lists all three kinds.
const CRDS: CrdInput[] = [
  {
    kind: 'Database',
    plural: 'databases',
    shortNames: ['drawdb'],
    description:
      'A database (PostgreSQL or Redis) that people and workloads reach through a Drawbridge agent. ' +
      'The controller runs one agent Deployment per Database.',
    spec: DatabaseSpec,
    status: DatabaseStatus,
    columns: [
      { name: 'Protocol', type: 'string', jsonPath: '.spec.protocol' },
      { name: 'Auth', type: 'string', jsonPath: '.spec.auth.type' },
      { name: 'Ready', type: 'string', jsonPath: `${ready(CONDITION.Ready)}.status` },
      { name: 'Reason', type: 'string', jsonPath: `${ready(CONDITION.Ready)}.reason` },
      { name: 'Users', type: 'integer', jsonPath: '.status.access.users' },
      { name: 'Roles', type: 'integer', jsonPath: '.status.access.roles', priority: 1 },
      { name: 'Endpoint', type: 'string', jsonPath: '.status.endpoint', priority: 1 },
      { name: 'URI', type: 'string', jsonPath: '.spec.uri', priority: 1 },
      // `-o wide`: why it is not Ready (a crash loop names the pod and the agent's error).
      { name: 'Message', type: 'string', jsonPath: `${ready(CONDITION.Ready)}.message`, priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  },
  {
    kind: 'AccessRole',
    plural: 'accessroles',
    shortNames: ['dbrole'],
    description:
      'What may be reached: Databases by label, database users and names, Redis commands. ' +
      'DatabaseUsers grant roles to people, groups and ServiceAccounts.',
    spec: AccessRoleSpec,
    status: AccessRoleStatus,
    columns: [
      { name: 'Ready', type: 'string', jsonPath: `${ready(ACCESS_CONDITION.Ready)}.status` },
      { name: 'Reason', type: 'string', jsonPath: `${ready(ACCESS_CONDITION.Ready)}.reason` },
      { name: 'Users', type: 'integer', jsonPath: '.status.users' },
      { name: 'Databases', type: 'integer', jsonPath: '.status.databases' },
      { name: 'Max TTL', type: 'string', jsonPath: '.spec.options.maxSessionTTL' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  },
  {
    kind: 'DatabaseUser',
    plural: 'databaseusers',
    shortNames: ['dbuser'],
    description:
      'Who (users, groups, ServiceAccounts) gets which AccessRoles, with traits for their templates.',
    spec: DatabaseUserSpec,
    status: DatabaseUserStatus,
    columns: [
      { name: 'Roles', type: 'string', jsonPath: '.spec.roles' },
      { name: 'Ready', type: 'string', jsonPath: `${ready(ACCESS_CONDITION.Ready)}.status` },
      { name: 'Reason', type: 'string', jsonPath: `${ready(ACCESS_CONDITION.Ready)}.reason` },
      { name: 'Databases', type: 'integer', jsonPath: '.status.databases' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  },
];

// String formats the API server's OpenAPI validation knows.
const K8S_FORMATS = new Set([
  'uri',
  'email',
  'hostname',
  'ipv4',
  'ipv6',
  'cidr',
  'mac',
  'uuid',
  'byte',
  'date',
  'date-time',
  'duration',
]);

/** Rewrites draft-2020 JSON Schema from zod into a Kubernetes structural OpenAPI v3 schema. */
function toStructural(schema: JSONSchema): JSONSchema {
  if (schema['x-kubernetes-int-or-string']) return intOrString(schema);
  const out: JSONSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    switch (key) {
      case '$schema':
      case 'additionalProperties':
        // A zod record of unknown values is a Kubernetes type passed through (preserve-unknown-fields).
        if (schema['x-kubernetes-preserve-unknown-fields']) break;
        if (key === 'additionalProperties' && typeof value === 'object' && !schema.properties) {
          out.additionalProperties = toStructural(value as JSONSchema);
        }
        break;
      case 'properties':
        out.properties = Object.fromEntries(
          Object.entries(value as Record<string, JSONSchema>).map(([k, v]) => [k, toStructural(v)]),
        );
        break;
      case 'items':
        out.items = toStructural(value as JSONSchema);
        break;
      case 'const':
        out.enum = [value];
        break;
      case 'anyOf':
      case 'oneOf': {
        // Structural schemas cannot branch on type; zod still checks these fields in the agent.
        const branches = value as JSONSchema[];
        const types = new Set(branches.map((b) => b.type));
        if (types.size === 1) Object.assign(out, toStructural(branches[0]!));
        else out['x-kubernetes-preserve-unknown-fields'] = true;
        break;
      }
      case 'format':
        // zod emits formats of its own (`starts_with`) that the API server warns about; the pattern stays.
        if (K8S_FORMATS.has(value as string)) out.format = value;
        break;
      case 'propertyNames':
        // Not part of Kubernetes' OpenAPI subset (the API server rejects the CRD); zod checks map keys.
        break;
      case 'pattern':
        // Go's RE2 has no lookarounds; ours do not use them, so patterns pass through unchanged.
        out.pattern = value;
        break;
      case 'minimum':
      case 'maximum':
        // zod bounds every integer by Number.MAX_SAFE_INTEGER; only real bounds say something.
        if (Math.abs(value as number) !== Number.MAX_SAFE_INTEGER) out[key] = value;
        break;
      default:
        out[key] = value;
    }
  }
  return out;
}

/** resource.Quantity style: a number or a string, the pattern checking the strings (as controller-gen writes it). */
function intOrString(schema: JSONSchema): JSONSchema {
  const branches = (schema.anyOf ?? []) as JSONSchema[];
  const pattern = branches.find((b) => b.type === 'string')?.pattern;
  return {
    ...(schema.description ? { description: schema.description } : {}),
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    ...(pattern ? { pattern } : {}),
    'x-kubernetes-int-or-string': true,
  };
}

function jsonSchemaOf(schema: z.ZodTypeAny): JSONSchema {
  return toStructural(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JSONSchema);
}

function buildCrd(input: CrdInput): Record<string, unknown> {
  const properties: JSONSchema = { spec: jsonSchemaOf(input.spec) };
  if (input.status) properties.status = jsonSchemaOf(input.status);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${input.plural}.${GROUP}` },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        kind: input.kind,
        listKind: `${input.kind}List`,
        plural: input.plural,
        singular: input.kind.toLowerCase(),
        shortNames: input.shortNames,
        categories: ['drawbridge'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: input.status ? { status: {} } : undefined,
          additionalPrinterColumns: input.columns,
          schema: {
            openAPIV3Schema: {
              type: 'object',
              description: input.description,
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string', description: `${GROUP}/${VERSION}` },
                kind: { type: 'string', description: input.kind },
                metadata: { type: 'object' },
                ...properties,
              },
            },
          },
        },
      ],
    },
  };
}

/** File name → YAML text for every CRD. */
export function renderCrds(): Map<string, string> {
  const header = '# Generated from src/api by `make crds`. Do not edit by hand.\n';
  return new Map(
    CRDS.map((c) => [
      `${GROUP}_${c.plural}.yaml`,
      header + stringify(JSON.parse(JSON.stringify(buildCrd(c))), { lineWidth: 0 }),
    ]),
  );
}
