// The standalone agent's config: one YAML stream holding an AgentConfig and the documents it uses.
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { AccessRole, DatabaseUser } from './access.js';
import { AgentConfig, Secret } from './agent-config.js';
import { DrawbridgeError } from '../errors.js';
import { Database } from './database.js';
import { ValidationError, parseOrThrow, yamlSyntaxError } from './validate.js';

export interface ConfigBundle {
  agent?: AgentConfig;
  databases: Database[];
  roles: AccessRole[];
  users: DatabaseUser[];
  secrets: Secret[];
}

const SCHEMAS = { AgentConfig, Database, AccessRole, DatabaseUser, Secret } as const;
type Kind = keyof typeof SCHEMAS;

/** Parses a YAML stream of Drawbridge documents. `source` names the file in errors. */
export function parseConfig(text: string, source: string): ConfigBundle {
  const bundle: ConfigBundle = { databases: [], roles: [], users: [], secrets: [] };
  const docs = parseAllDocuments(text, { prettyErrors: false });
  docs.forEach((doc, i) => {
    const n = i + 1;
    if (doc.errors.length) throw yamlSyntaxError(`${source} document ${n}`, text, doc.errors[0]);
    const value = doc.toJS() as { kind?: unknown; metadata?: { name?: unknown } } | null;
    if (value === null || value === undefined) return; // empty document between `---`
    const kind = value.kind;
    if (typeof kind !== 'string' || !(kind in SCHEMAS)) {
      throw new ValidationError(
        `${source} document ${n}: unknown kind ${JSON.stringify(kind)}; expected one of ${Object.keys(SCHEMAS).join(', ')}`,
        ['kind'],
      );
    }
    const name = typeof value.metadata?.name === 'string' ? ` ${value.metadata.name}` : '';
    const where = `${source} document ${n} (${kind}${name})`;
    const parsed = parseOrThrow(SCHEMAS[kind as Kind], value, where);
    switch (parsed.kind) {
      case 'AgentConfig':
        if (bundle.agent) throw new ValidationError(`${where}: only one AgentConfig is allowed per file`, []);
        bundle.agent = parsed;
        break;
      case 'Database':
        bundle.databases.push(parsed);
        break;
      case 'AccessRole':
        bundle.roles.push(parsed);
        break;
      case 'DatabaseUser':
        bundle.users.push(parsed);
        break;
      case 'Secret':
        bundle.secrets.push(parsed);
        break;
    }
  });
  checkReferences(bundle, source);
  return bundle;
}

function checkReferences(bundle: ConfigBundle, source: string): void {
  const roleNames = new Set(bundle.roles.map((r) => r.metadata.name));
  for (const u of bundle.users) {
    for (const r of u.spec.roles) {
      if (!roleNames.has(r)) {
        throw new ValidationError(
          `${source}: DatabaseUser ${u.metadata.name} names role "${r}", which is not in the file; add an AccessRole named "${r}" or fix spec.roles`,
          ['spec.roles'],
        );
      }
    }
  }
  const agent = bundle.agent;
  if (agent && !bundle.databases.some((d) => d.metadata.name === agent.spec.database)) {
    throw new ValidationError(
      `${source}: AgentConfig spec.database names "${agent.spec.database}", but no Database document has that name`,
      ['spec.database'],
    );
  }
}

export async function loadConfigFile(path: string): Promise<ConfigBundle> {
  const text = await readFile(path, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      `${path}: cannot read it (${err.code ?? err.message})`,
      'pass --config the YAML file holding the AgentConfig and the documents it uses',
    );
  });
  return parseConfig(text, path);
}
