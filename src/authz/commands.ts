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
  /**
   * Subcommands the engine does not name apart (a module's container command, which the engine's
   * parser does not split into `parent|sub`): the command is allowed only when each of them is.
   */
  unsplit?: readonly CommandInfo[];
}

/** `guard`: the engine's check of this command's arguments, run after the roles allow it. */
export type CommandDecision<G = never> =
  { allowed: true; guard?: G } | { allowed: false; reason: string; rule: CommandDenial };

/** Which rule refused a command: the label of drawbridge_access_denied_total{level="command"}. */
export type CommandDenial = 'deny_rule' | 'no_allow_rule' | 'scripting' | 'server_wide' | 'arguments';

/**
 * Commands that run code inside the server (scripts, functions) or install code that later FCALLs run.
 * The commands a script calls never pass the agent, so these are allowed only on top of the roles'
 * own rules: see CommandPolicy's scripting rule. Beyond the ones named here, any command the server
 * puts in @scripting counts (a module's, such as Redis Stack's TFCALL) unless it only manages scripts:
 * SCRIPT LOAD runs nothing, and a script is found by the hash of its own text, so nobody runs loaded
 * code they did not write.
 */
const SCRIPTING_COMMANDS: ReadonlySet<string> = new Set([
  'eval',
  'evalsha',
  'eval_ro',
  'evalsha_ro',
  'fcall',
  'fcall_ro',
  'function|load',
  'function|restore',
]);

/** Redis 7's @scripting commands that neither run nor install code. */
const SCRIPT_MANAGEMENT: ReadonlySet<string> = new Set([
  'script',
  'script|debug',
  'script|exists',
  'script|flush',
  'script|help',
  'script|kill',
  'script|load',
  'function',
  'function|delete',
  'function|dump',
  'function|flush',
  'function|help',
  'function|kill',
  'function|list',
  'function|stats',
]);

/** Runs (or installs) code in the server: a script, a function, a module's @scripting command. */
export function runsCode(cmd: CommandInfo): boolean {
  if (SCRIPTING_COMMANDS.has(cmd.name)) return true;
  return cmd.categories.includes('scripting') && !SCRIPT_MANAGEMENT.has(cmd.name);
}

export interface CommandPolicyOptions<G> {
  /**
   * A limit the agent holds beyond the roles that a script could get past (standalone Redis: the
   * Database's DB number, which SELECT inside a script leaves): scripting then needs
   * allow.redisScripting even for a person allowed every command.
   */
  scriptLimit?: string;
  /** The engine's argument checks by command name, handed out with the (cached) decision. */
  guards?: ReadonlyMap<string, G>;
  /**
   * Commands that change code beyond the agent's limit (standalone Redis: FUNCTION DELETE/FLUSH, whose
   * libraries every DB's FCALL runs), by name with what they do: decided by the scripting rule too.
   */
  sharedCode?: ReadonlyMap<string, string>;
  /**
   * Commands that act on or show more than the session's limit (standalone Redis: every DB of the
   * server, whose other DBs may be other Databases'), by name with what they do, and that limit:
   * allowed only by a role that also sets allow.redisServerWide.
   */
  serverWide?: { commands: ReadonlyMap<string, string>; limit: string };
}

/** How to get what CommandPolicyOptions.serverWide holds back. */
export const SERVER_WIDE_GRANT =
  'commands that act on or show the whole server need a role with allow.redisServerWide: true';

/** Whether a role allowing the session grants what acts on the whole (standalone Redis) server. */
export function grantsServerWide(allowedBy: readonly BoundRole[]): boolean {
  return allowedBy.some((r) => r.allow.redisServerWide);
}

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
 *
 * Scripting rule: commands that run code (runsCode) are refused unless a role allowing the session sets
 * allow.redisScripting, or the person's effective command set (after every allow and deny of their
 * roles for this database) is all commands and no `scriptLimit` applies.
 */
export class CommandPolicy<G = never> {
  private readonly cache = new Map<string, CommandDecision<G>>();
  private readonly denies: { role: string; entries: string[] }[];
  private readonly allows: { role: string; entries: string[] }[] | 'all';
  /** Why scripting is refused (undefined: allowed as far as command rules allow each command). */
  private readonly scriptingRefusal: string | undefined;
  private readonly guards: ReadonlyMap<string, G> | undefined;
  private readonly sharedCode: ReadonlyMap<string, string> | undefined;
  /** What needs allow.redisServerWide, when no role allowing the session sets it. */
  private readonly serverWide: CommandPolicyOptions<G>['serverWide'];

  constructor(
    roles: readonly BoundRole[],
    allowedBy: readonly BoundRole[],
    database: Database,
    opts: CommandPolicyOptions<G> = {},
  ) {
    const labels = database.metadata.labels ?? {};
    this.denies = roles
      .filter((r) => r.deny.redisCommands?.length)
      .filter((r) => !r.deny.databaseLabels || matchLabels(r.deny.databaseLabels, labels, 'match').matched)
      .map((r) => ({ role: r.name, entries: r.deny.redisCommands! }));
    this.allows = allowedBy.some((r) => !r.allow.redisCommands)
      ? 'all'
      : allowedBy.map((r) => ({ role: r.name, entries: r.allow.redisCommands! }));
    this.guards = opts.guards;
    this.sharedCode = opts.sharedCode;
    this.serverWide = grantsServerWide(allowedBy) ? undefined : opts.serverWide;
    const granted = allowedBy.find((r) => r.allow.redisScripting);
    const narrower = this.narrowedBy() ?? opts.scriptLimit;
    this.scriptingRefusal = granted || narrower === undefined ? undefined : narrower;
  }

  /** What makes the effective command set narrower than all commands, or undefined. */
  private narrowedBy(): string | undefined {
    const deny = this.denies[0];
    if (deny) return `role "${deny.role}" denies "${deny.entries[0]}"`;
    if (this.allows === 'all') return undefined;
    if (this.allows.some((a) => a.entries.includes('*') || a.entries.includes('@all'))) return undefined;
    return `no role allows every command (${this.listAllows()})`;
  }

  private listAllows(): string {
    if (this.allows === 'all') return '';
    return this.allows.map((a) => `role "${a.role}" allows ${JSON.stringify(a.entries)}`).join('; ');
  }

  /** The decision already made for the command named `name`, if any (one lookup on the hot path). */
  decided(name: string): CommandDecision<G> | undefined {
    return this.cache.get(name);
  }

  check(cmd: CommandInfo): CommandDecision<G> {
    let d = this.cache.get(cmd.name);
    if (!d) {
      d = this.decide(cmd);
      this.cache.set(cmd.name, d);
    }
    return d;
  }

  private decide(cmd: CommandInfo): CommandDecision<G> {
    const own = this.decideOne(cmd);
    if (!own.allowed || cmd.unsplit === undefined) return own;
    for (const sub of cmd.unsplit) {
      const d = this.check(sub);
      if (d.allowed) continue;
      const why = `"${cmd.name}" counts as each of its subcommands, which the agent does not tell apart`;
      return { allowed: false, rule: d.rule, reason: `${d.reason}; ${why}` };
    }
    return own;
  }

  private decideOne(cmd: CommandInfo): CommandDecision<G> {
    for (const d of this.denies) {
      const hit = matchCommand(d.entries, cmd);
      if (hit) return { allowed: false, reason: `role "${d.role}" denies "${hit}"`, rule: 'deny_rule' };
    }
    if (this.allows !== 'all' && !this.allows.some((a) => matchCommand(a.entries, cmd))) {
      const reason = `no role allows "${cmd.name}" (${this.listAllows()})`;
      return { allowed: false, reason, rule: 'no_allow_rule' };
    }
    const shared = this.sharedCode?.get(cmd.name);
    if (this.scriptingRefusal !== undefined && (shared !== undefined || runsCode(cmd))) {
      const what = cmd.name.startsWith('function|') ? 'loads functions, which run' : 'runs';
      const does = shared ?? `${what} commands inside the server, where the agent cannot check them`;
      return {
        allowed: false,
        rule: 'scripting',
        reason:
          `${cmd.name.replace('|', ' ').toUpperCase()} ${does}, and ${this.scriptingRefusal}; scripts and ` +
          `functions need a role with allow.redisScripting: true (they then run with the backend ACL user's rights)`,
      };
    }
    const wide = this.serverWide?.commands.get(cmd.name);
    if (wide !== undefined) {
      return {
        allowed: false,
        rule: 'server_wide',
        reason: `${cmd.name.replace('|', ' ').toUpperCase()} ${wide}, and ${this.serverWide!.limit}; ${SERVER_WIDE_GRANT}`,
      };
    }
    const guard = this.guards?.get(cmd.name);
    return guard === undefined ? ALLOWED : { allowed: true, guard };
  }
}
