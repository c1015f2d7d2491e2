// Trait templates: `{{traits.dbUsers}}` in a role expands to that person's values. Teleport's
// `{{internal.db_users}}` / `{{external.x}}` spellings are accepted too, so its roles port unchanged.
import type { AllowRule } from '../api/access.js';

export type Traits = Record<string, readonly string[]>;

const TEMPLATE = /\{\{\s*(traits|internal|external)\.([A-Za-z0-9_]+)\s*\}\}/;
const INTERNAL_ALIASES: Record<string, string> = { db_users: 'dbUsers', db_names: 'dbNames' };

/** Expands one value; a template naming a trait the person lacks expands to nothing. */
function expandValue(value: string, traits: Traits): string[] {
  const m = TEMPLATE.exec(value);
  if (!m) return [value];
  const name = m[1] === 'internal' ? (INTERNAL_ALIASES[m[2]!] ?? m[2]!) : m[2]!;
  const values = traits[name] ?? [];
  const prefix = value.slice(0, m.index);
  const suffix = value.slice(m.index + m[0].length);
  return values.map((v) => prefix + v + suffix);
}

function expandList(values: readonly string[] | undefined, traits: Traits): string[] | undefined {
  return values?.flatMap((v) => expandValue(v, traits));
}

/** A rule with every template replaced; label values normalised to lists. */
export interface ExpandedRule {
  databaseLabels?: Record<string, string[]>;
  databaseUsers?: string[];
  databaseNames?: string[];
  redisCommands?: string[];
  redisScripting?: boolean;
  redisServerWide?: boolean;
}

/** Expands an allow or deny rule (deny rules have no redisScripting, redisServerWide). */
export function expandRule(rule: AllowRule, traits: Traits): ExpandedRule {
  const out: ExpandedRule = {};
  if (rule.databaseLabels) {
    out.databaseLabels = Object.fromEntries(
      Object.entries(rule.databaseLabels).map(([k, v]) => [
        k,
        (Array.isArray(v) ? v : [v]).flatMap((x) => expandValue(x, traits)),
      ]),
    );
  }
  const users = expandList(rule.databaseUsers, traits);
  if (users) out.databaseUsers = users;
  const names = expandList(rule.databaseNames, traits);
  if (names) out.databaseNames = names;
  if (rule.redisCommands) out.redisCommands = rule.redisCommands.map((c) => c.toLowerCase());
  if (rule.redisScripting) out.redisScripting = true;
  if (rule.redisServerWide) out.redisServerWide = true;
  return out;
}
