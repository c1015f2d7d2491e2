// A Database's DB number (spec.uri `redis://host:6379/3`; Redis Cluster: DB 0) is a boundary: other
// DBs of the same server belong to other Databases, with other access rules. So SELECT goes only to
// this DB (answered by the agent: the connection is already there), and whatever would read or write
// another DB is refused — SWAPDB, MOVE, COPY ... DB n, MIGRATE to another DB, and on a standalone
// server FLUSHALL (it empties every DB), MONITOR and SLOWLOG GET (they show every DB's traffic) and
// REPLICAOF a master (it replaces every DB). These run as guards after the roles allowed the command, so
// only these few command names pay for them. Scripts could SELECT past the boundary inside the
// server: on standalone servers the scripting rule accounts for it (STANDALONE_SCRIPT_LIMIT).
import type { RedisCommand } from './parser.js';
import { OK, type RespVersion } from './serializer.js';

/**
 * `check` asks the backend first (commands after it wait), then refuses with its reason or relays;
 * `passed` runs just before the relay (the command may still be refused after the check: a policy
 * change made while it waited).
 */
export interface GuardCheck {
  check(): Promise<string | undefined>;
  passed?(): void;
}

/** undefined: relay the command; `refuse`: the reason it is refused; `answer`: the agent's own reply. */
export type GuardResult = undefined | { refuse: string } | { answer: Buffer } | GuardCheck;

/** What a guard may know of its session. */
export interface GuardContext {
  readonly inMulti: boolean;
  /** The protocol in force once every command relayed so far has run (a HELLO 3 relayed counts). */
  readonly protocol: RespVersion;
  /** The database user the backend connection is logged in as. */
  readonly dbUser: string;
  /** CLIENT TRACKING is on for what this database user may read (tracking.ts). */
  trackingUser?: string | undefined;
  /** Sends `cmd` on the session's backend connection after everything relayed so far; its reply, unrelayed. */
  ask(cmd: RedisCommand): Promise<Buffer>;
}

export type CommandGuard = (cmd: RedisCommand, s: GuardContext) => GuardResult;

export const STANDALONE_SCRIPT_LIMIT =
  "on a standalone server the agent holds the session to its Database's DB number, which SELECT inside a script would leave";

/**
 * A server's functions and script cache are not per DB, nor is the script it runs: every DB's FCALL
 * runs the same libraries, EVALSHA finds the same scripts, SCRIPT KILL stops whoever's script runs.
 * On a standalone server (other DBs, other Databases) these need what running scripts needs (the
 * scripting rule).
 */
const SHARED_FUNCTIONS = 'changes the functions every DB of the server shares';
const RUNNING = "stops the script or function running now, whichever DB's session runs it";
export const STANDALONE_SHARED_CODE: ReadonlyMap<string, string> = new Map([
  ['function|delete', SHARED_FUNCTIONS],
  ['function|flush', SHARED_FUNCTIONS],
  ['function|kill', RUNNING],
  ['script|kill', RUNNING],
  ['script|flush', 'empties the script cache every DB of the server shares'],
]);

/** The guards for a Database on DB `db` (a cluster: 0). */
export function dbGuards(db: number, cluster: boolean): ReadonlyMap<string, CommandGuard> {
  const own = String(db);
  const ours = (arg: Buffer | undefined) => arg !== undefined && arg.toString('latin1') === own;
  // Redis reads DB numbers with string2ll: "03", "+3" and " 3" are not 3, so exact text is the rule.
  const boundary = (what: string) => ({
    refuse: cluster
      ? `Redis Cluster has only DB 0: ${what}`
      : `the DB number is this Database's boundary (DB ${own} in spec.uri): ${what}`,
  });
  const guards = new Map<string, CommandGuard>([
    [
      'select',
      (cmd, s) => {
        if (cmd.args.length !== 2) return undefined; // the server's arity error
        if (!ours(cmd.args[1])) return boundary(`SELECT ${show(cmd.args[1])} would leave it`);
        // In MULTI the server queues it (QUEUED, then OK in EXEC's reply): relayed to keep that shape.
        return s.inMulti ? undefined : { answer: OK };
      },
    ],
    ['swapdb', () => boundary('SWAPDB exchanges whole DBs')],
    ['move', () => boundary('MOVE puts a key into another DB')],
    [
      'copy',
      (cmd) => {
        // COPY src dst [DB n] [REPLACE]: Redis takes the last DB option, so every one must be ours.
        const a = cmd.args;
        for (let i = 3; i + 1 < a.length; i++) {
          if (a[i]!.toString('latin1').toLowerCase() !== 'db') continue;
          if (!ours(a[++i])) return boundary(`COPY ... DB ${show(a[i])} writes to another DB`);
        }
        return undefined;
      },
    ],
    [
      'migrate',
      // MIGRATE host port key|"" destination-db timeout ...: the target may be this same server.
      (cmd) =>
        cmd.args.length < 6 || ours(cmd.args[4])
          ? undefined
          : boundary(`MIGRATE to DB ${show(cmd.args[4])} may write to another DB of this server`),
    ],
  ]);
  if (!cluster) {
    guards.set('flushall', () => boundary('FLUSHALL empties every DB of the server; use FLUSHDB'));
    guards.set('monitor', () => boundary("MONITOR shows every DB's commands and values"));
    guards.set('slowlog|get', () => boundary("SLOWLOG GET shows every DB's commands and values"));
    // REPLICAOF NO ONE (promote) keeps the data; any master replaces every DB with its own.
    const replicaof: CommandGuard = (cmd) =>
      cmd.args.length === 3 && lower(cmd.args[1]!) === 'no' && lower(cmd.args[2]!) === 'one'
        ? undefined
        : boundary(
            `${cmd.name.toUpperCase()} makes the server replicate another, which replaces every DB's data`,
          );
    guards.set('replicaof', replicaof);
    guards.set('slaveof', replicaof);
  }
  return guards;
}

function lower(arg: Buffer): string {
  return arg.toString('latin1').toLowerCase();
}

function show(arg: Buffer | undefined): string {
  return arg === undefined ? '' : arg.toString('utf8', 0, 32);
}
