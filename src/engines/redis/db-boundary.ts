// A Database's DB number (spec.uri `redis://host:6379/3`; Redis Cluster: DB 0) is a boundary: other
// DBs of the same server belong to other Databases, with other access rules. So SELECT goes only to
// this DB (answered by the agent: the connection is already there), and whatever would read or write
// another DB is refused — SWAPDB, MOVE, COPY ... DB n, MIGRATE to another DB, MONITOR (every DB's
// traffic; the agent relays no such stream). On a standalone server, what acts on or shows the whole
// server (STANDALONE_SERVER_WIDE: FLUSHALL, CONFIG, ACL, CLIENT KILL...; REPLICAOF a master) needs a
// role with allow.redisServerWide, and without one CLIENT LIST, INFO and PUBSUB CHANNELS are cut to
// this DB (db-replies.ts) and other DBs' keyspace notifications refused (keyspace-channels.ts). These
// run as guards after the roles allowed the command, so only these few command names pay for them.
// Scripts could SELECT past the boundary inside the server: on standalone servers the scripting rule
// accounts for it (STANDALONE_SCRIPT_LIMIT). On a cluster the agent's own boundary is the nodes the
// cluster names, where it sends credentials: what changes them (CLUSTER_SERVER_WIDE) needs the same
// grant, and so do scripts, which may call CLUSTER MEET/SETSLOT (CLUSTER_SCRIPT_LIMIT).
import { type CommandDenial, SERVER_WIDE_GRANT } from '../../authz/commands.js';
import { ownChannels, ownClients, ownKeyspace } from './db-replies.js';
import { aclUserField, rootPatterns } from './acl-user.js';
import { OtherDbChannels } from './keyspace-channels.js';
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
  /** What the command's reply becomes, if relayed. */
  translate?(reply: Buffer): Buffer;
}

/**
 * undefined: relay the command; `refuse`: the reason it is refused (and the rule, if not `arguments`);
 * `answer`: the agent's own reply; `translate`: relay it and pass its reply through this.
 */
export type GuardResult =
  | undefined
  | { refuse: string; rule?: CommandDenial }
  | { answer: Buffer }
  | { translate: (reply: Buffer) => Buffer }
  | GuardCheck;

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
 * FUNCTION LIST/DUMP show every library's code, FUNCTION STATS the running one's arguments. On a
 * standalone server (other DBs, other Databases) these need what running scripts needs (the scripting
 * rule).
 */
const SHARED_FUNCTIONS = 'changes the functions every DB of the server shares';
const RUNNING = "stops the script or function running now, whichever DB's session runs it";
const SHOWS_FUNCTIONS = 'shows the functions every DB of the server shares, with their code';
export const STANDALONE_SHARED_CODE: ReadonlyMap<string, string> = new Map([
  ['function|delete', SHARED_FUNCTIONS],
  ['function|flush', SHARED_FUNCTIONS],
  ['function|kill', RUNNING],
  ['script|kill', RUNNING],
  ['script|flush', 'empties the script cache every DB of the server shares'],
  ['function|list', SHOWS_FUNCTIONS],
  ['function|dump', SHOWS_FUNCTIONS],
  [
    'function|stats',
    "shows the script or function running now, whichever DB's session runs it, with its arguments",
  ],
]);

const USERS = "changes the server's users, whom every DB's Databases log in as";
const SHOWS_USERS = "shows the server's users and their rules";
const LATENCY = "shows the latencies of every DB's commands";
const MEMORY = "shows the memory of the whole server, each DB's too";
const STATS = "resets the statistics of every DB's commands";
const DUMPS = "writes every DB to the server's files";
const REPLICATES = "streams every DB's data as replication does";
const MODULES = 'changes the modules, code that runs for every DB';

/**
 * Standalone: what acts on or shows every DB of the server, by name with what it does. Needs
 * allow.redisServerWide (authz/commands.ts), like SHUTDOWN; CLIENT INFO, MEMORY USAGE or OBJECT are
 * the session's own and stay with the command rules.
 */
export const STANDALONE_SERVER_WIDE: ReadonlyMap<string, string> = new Map([
  ['flushall', 'empties every DB of the server (FLUSHDB empties this one)'],
  ['slowlog|get', "shows every DB's commands and values"],
  ['slowlog|reset', "clears the log of every DB's slow commands"],
  ['config|get', "shows the whole server's configuration, its passwords too"],
  ['config|set', 'changes the configuration every DB of the server runs with'],
  ['config|rewrite', "rewrites the whole server's configuration file"],
  ['config|resetstat', STATS],
  ['acl|setuser', USERS],
  ['acl|deluser', USERS],
  ['acl|load', USERS],
  ['acl|save', "writes the server's users to its ACL file"],
  ['acl|log', "shows every DB's denied commands, with their users and key names"],
  ['acl|list', SHOWS_USERS],
  ['acl|users', SHOWS_USERS],
  ['acl|getuser', SHOWS_USERS],
  ['acl|dryrun', SHOWS_USERS],
  ['client|kill', "ends the connections of any DB's clients"],
  ['client|pause', "pauses every DB's clients"],
  ['client|unpause', "resumes every DB's clients"],
  ['client|unblock', "wakes any DB's blocked command"],
  ['client|no-evict', "keeps this connection when the server evicts clients, at every DB's expense"],
  ['debug', 'debugs the whole server (RELOAD, DIGEST, SET-ACTIVE-EXPIRE, SLEEP...)'],
  ['save', DUMPS],
  ['bgsave', DUMPS],
  ['bgrewriteaof', DUMPS],
  ['shutdown', "stops the server, every DB's clients with it"],
  ['failover', 'hands the whole server over to a replica'],
  ['replconf', REPLICATES], // SYNC and PSYNC the agent answers itself (local-commands.ts)
  ['module|load', MODULES],
  ['module|loadex', MODULES],
  ['module|unload', MODULES],
  ['latency|doctor', LATENCY],
  ['latency|graph', LATENCY],
  ['latency|histogram', LATENCY],
  ['latency|history', LATENCY],
  ['latency|latest', LATENCY],
  ['latency|reset', "clears the latencies of every DB's commands"],
  ['memory|doctor', MEMORY],
  ['memory|stats', MEMORY],
  ['memory|malloc-stats', MEMORY],
  ['memory|purge', 'purges the allocator of the whole server'],
]);

const TOPOLOGY =
  "changes which node serves which slots, where the agent sends this Database's commands and credentials";
const ANNOUNCES =
  "changes the nodes' configuration, the addresses they announce (cluster-announce-ip/-hostname/-port/-tls-port) too";

/**
 * Redis Cluster: the agent dials, and logs in with the Database's credentials at, whatever address
 * the cluster names for a node. What changes those names (a node met at any address, slots handed to
 * it, a node announcing another address, a module's code) or shows the nodes' passwords needs
 * allow.redisServerWide, as on a standalone server. Commands the cluster only reads (CLUSTER SHARDS,
 * NODES, INFO) stay with the command rules.
 */
export const CLUSTER_SERVER_WIDE: ReadonlyMap<string, string> = new Map([
  ['cluster|meet', 'adds a node at any address to the cluster, which the agent then dials and logs in at'],
  ['cluster|forget', TOPOLOGY],
  ['cluster|reset', TOPOLOGY],
  ['cluster|setslot', TOPOLOGY],
  ['cluster|addslots', TOPOLOGY],
  ['cluster|addslotsrange', TOPOLOGY],
  ['cluster|delslots', TOPOLOGY],
  ['cluster|delslotsrange', TOPOLOGY],
  ['cluster|flushslots', TOPOLOGY],
  ['cluster|failover', TOPOLOGY],
  ['cluster|replicate', TOPOLOGY],
  ['cluster|bumpepoch', TOPOLOGY],
  ['cluster|set-config-epoch', TOPOLOGY],
  ['config|set', ANNOUNCES],
  ['config|get', "shows the nodes' configuration, their passwords too (requirepass, masterauth)"],
  ['module|load', 'loads code into the nodes, which may announce any address'],
  ['module|loadex', 'loads code into the nodes, which may announce any address'],
]);

/** Why CLUSTER_SERVER_WIDE is refused. */
export const CLUSTER_SERVER_WIDE_LIMIT =
  "this Database is a Redis Cluster, and the agent dials and sends the Database's credentials to the nodes the cluster names";

/** Scripts on a cluster without allow.redisServerWide: they may call CLUSTER MEET/SETSLOT (not noscript). */
export const CLUSTER_SCRIPT_LIMIT =
  "a script or function may call what changes the cluster's topology (CLUSTER MEET, SETSLOT...), which needs allow.redisServerWide";

/** Why STANDALONE_SERVER_WIDE is refused, for the Database on DB `db`. */
export function serverWideLimit(db: number): string {
  return `this Database is DB ${db} of a standalone server (spec.uri), whose other DBs may be other Databases'`;
}

/** The guards for a Database on DB `db` (a cluster: 0); `wide`: a role grants allow.redisServerWide. */
export function dbGuards(db: number, cluster: boolean, wide = false): ReadonlyMap<string, CommandGuard> {
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
  if (cluster) return guards;
  // The agent relays no MONITOR stream, allow.redisServerWide or not.
  guards.set('monitor', () => boundary("MONITOR shows every DB's commands and values"));
  if (wide) return guards;
  const serverWide = (what: string) => ({
    refuse: `${what}, and ${serverWideLimit(db)}; ${SERVER_WIDE_GRANT}`,
    rule: 'server_wide' as const,
  });
  // Standalone, no allow.redisServerWide: REPLICAOF NO ONE (promote) keeps the data; any master
  // replaces every DB with its own.
  const replicaof: CommandGuard = (cmd) =>
    cmd.args.length === 3 && lower(cmd.args[1]!) === 'no' && lower(cmd.args[2]!) === 'one'
      ? undefined
      : serverWide(
          `${cmd.name.toUpperCase()} makes the server replicate another, which replaces every DB's data`,
        );
  guards.set('replicaof', replicaof);
  guards.set('slaveof', replicaof);
  // What lists every DB is cut to this one; in a transaction EXEC's reply would hold it uncut.
  const cut = (what: string, translate: (reply: Buffer) => Buffer): CommandGuard => {
    const result = { translate };
    return (_cmd, s) =>
      s.inMulti
        ? serverWide(`${what} inside MULTI would show every DB's (run it outside the transaction)`)
        : result;
  };
  guards.set(
    'client|list',
    cut('CLIENT LIST', (r) => ownClients(r, db)),
  );
  guards.set(
    'info',
    cut('INFO', (r) => ownKeyspace(r, db)),
  );
  // Redis lists every channel of the server, whoever may use it: cut to the user's ACL channels.
  const other = new OtherDbChannels(db, serverWideLimit(db));
  const channels =
    (what: string, notifications?: OtherDbChannels): CommandGuard =>
    (_cmd, s) => {
      if (s.inMulti)
        return serverWide(
          `${what} inside MULTI would show every DB's channels (run it outside the transaction)`,
        );
      let patterns: Buffer[] = [];
      return {
        check: async () => {
          const got = await aclUserField(s, 'channels');
          if ('why' in got) {
            return serverWide(
              `${what} lists every channel of the server, whoever may use it, and the agent cannot read database user "${s.dbUser}"'s channel patterns (ACL GETUSER: ${got.why}; let it run ACL GETUSER)`,
            ).refuse;
          }
          patterns = rootPatterns(got.value, /^&(.*)$/).map((p) => Buffer.from(p, 'latin1'));
          return undefined;
        },
        translate: (reply) => ownChannels(reply, patterns, notifications),
      };
    };
  guards.set('pubsub|channels', channels('PUBSUB CHANNELS', other));
  guards.set('pubsub|shardchannels', channels('PUBSUB SHARDCHANNELS'));
  return guards;
}

function lower(arg: Buffer): string {
  return arg.toString('latin1').toLowerCase();
}

function show(arg: Buffer | undefined): string {
  return arg === undefined ? '' : arg.toString('utf8', 0, 32);
}
