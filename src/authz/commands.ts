// Command-level rules for Redis (`redisCommands`): commands, `parent|sub` subcommands and `@category`
// names as Redis ACLs spell them. Categories come from the backend's COMMAND INFO, not a table here.
import type { Database } from '../api/database.js';
import type { BoundRole } from './engine.js';
import { matchLabels } from './match.js';

export interface CommandInfo {
  /** Lower-case name; `parent|sub` for subcommands (e.g. `config|get`). */
  name: string;
  /** Lower-case ACL categories without `@` (e.g. `read`, `dangerous`). */
  categories: readonly string[];
}

export type CommandDecision = { allowed: true } | { allowed: false; reason: string };

/** The first entry of `entries` that covers `cmd`, or undefined. */
export function matchCommand(entries: readonly string[], cmd: CommandInfo): string | undefined {
  for (const e of entries) {
    if (e === '*' || e === '@all') return e;
    if (e.startsWith('@')) {
      if (cmd.categories.includes(e.slice(1))) return e;
    } else if (e === cmd.name || cmd.name.startsWith(`${e}|`)) {
      return e;
    }
  }
  return undefined;
}

const ALLOWED: CommandDecision = { allowed: true };

/**
 * Per-session command policy. Decisions are cached by command name, so the hot path pays one Map
 * lookup per command after the first of its kind.
 */
export class CommandPolicy {
  private readonly cache = new Map<string, CommandDecision>();
  private readonly denies: { role: string; entries: string[] }[];
  private readonly allows: { role: string; entries: string[] }[] | 'all';

  constructor(roles: readonly BoundRole[], allowedBy: readonly BoundRole[], database: Database) {
    const labels = database.metadata.labels ?? {};
    this.denies = roles
      .filter((r) => r.deny.redisCommands?.length)
      .filter((r) => !r.deny.databaseLabels || matchLabels(r.deny.databaseLabels, labels).matched)
      .map((r) => ({ role: r.name, entries: r.deny.redisCommands! }));
    this.allows = allowedBy.some((r) => !r.allow.redisCommands)
      ? 'all'
      : allowedBy.map((r) => ({ role: r.name, entries: r.allow.redisCommands! }));
  }

  check(cmd: CommandInfo): CommandDecision {
    let d = this.cache.get(cmd.name);
    if (!d) {
      d = this.decide(cmd);
      this.cache.set(cmd.name, d);
    }
    return d;
  }

  private decide(cmd: CommandInfo): CommandDecision {
    for (const d of this.denies) {
      const hit = matchCommand(d.entries, cmd);
      if (hit) return { allowed: false, reason: `role "${d.role}" denies "${hit}"` };
    }
    if (this.allows === 'all') return ALLOWED;
    for (const a of this.allows) if (matchCommand(a.entries, cmd)) return ALLOWED;
    const listed = this.allows.map((a) => `role "${a.role}" allows ${JSON.stringify(a.entries)}`).join('; ');
    return { allowed: false, reason: `no role allows "${cmd.name}" (${listed})` };
  }
}
