// CustomResourceDefinitions generated from the zod schemas, so the API server and the agent validate
// against one source of truth. `make crds` writes them; a unit test fails when crds/ is stale.
import { z } from 'zod';
import { stringify } from 'yaml';
import { AccessRoleSpec, DatabaseUserSpec } from './access.js';
import { DatabaseSpec, DatabaseStatus } from './database.js';
import { GROUP, VERSION } from './meta.js';

type JSONSchema = Record<string, unknown>;

interface CrdInput {
  kind: string;
  plural: string;
  shortNames: string[];
  spec: z.ZodTypeAny;
  status?: z.ZodTypeAny;
  columns: { name: string; type: string; jsonPath: string; priority?: number }[];
}

const CRDS: CrdInput[] = [
  {
    kind: 'Database',
    plural: 'databases',
    shortNames: ['db', 'dbs'],
    spec: DatabaseSpec,
    status: DatabaseStatus,
    columns: [
      { name: 'Protocol', type: 'string', jsonPath: '.spec.protocol' },
      { name: 'Auth', type: 'string', jsonPath: '.spec.auth.type' },
      { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason' },
      { name: 'Endpoint', type: 'string', jsonPath: '.status.endpoint', priority: 1 },
      { name: 'URI', type: 'string', jsonPath: '.spec.uri', priority: 1 },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  },
  {
    kind: 'AccessRole',
    plural: 'accessroles',
    shortNames: ['dbrole'],
    spec: AccessRoleSpec,
    columns: [
      { name: 'Max TTL', type: 'string', jsonPath: '.spec.options.maxSessionTTL' },
      { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
    ],
  },
  {
    kind: 'DatabaseUser',
    plural: 'databaseusers',
    shortNames: ['dbuser'],
    spec: DatabaseUserSpec,
    columns: [
      { name: 'Roles', type: 'string', jsonPath: '.spec.roles' },
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
export function toStructural(schema: JSONSchema): JSONSchema {
  const out: JSONSchema = {};
  for (const [key, value] of Object.entries(schema)) {
    switch (key) {
      case '$schema':
      case 'additionalProperties':
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
      default:
        out[key] = value;
    }
  }
  return out;
}

function jsonSchemaOf(schema: z.ZodTypeAny): JSONSchema {
  return toStructural(z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as JSONSchema);
}

export function buildCrd(input: CrdInput): Record<string, unknown> {
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
              required: ['spec'],
              properties: {
                apiVersion: { type: 'string' },
                kind: { type: 'string' },
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
