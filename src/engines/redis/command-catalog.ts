// What the backend says about itself: every command and subcommand with its ACL categories (from
// `COMMAND`, i.e. COMMAND INFO for all), its version, and whether it runs in cluster mode (HELLO). Learned
// once per backend address and cached, so access rules on `@write` or `@dangerous` follow the server
// actually behind the agent (modules, newer commands) instead of a table kept by hand.
import type { CommandInfo } from '../../authz/commands.js';
import { REDIS_CONTAINER_COMMANDS } from './command-name.js';
import { DrawbridgeError, errorMessage } from '../../errors.js';
import { type BackendConnectOptions, connectBackend, roundTrip } from './backend-auth.js';
import { fromAnySeed } from './cluster/seeds.js';
import { RespError, type RespValue, decodeReply } from './reply-parser.js';
import type { RedisCommand } from './parser.js';
import { encodeCommand, errorReply } from './serializer.js';

export interface BackendFacts {
  /** By rule name: `get`, `config|get`. */
  commands: ReadonlyMap<string, CommandInfo>;
  /** Commands that have subcommands (their first argument picks one). */
  containers: ReadonlySet<string>;
  version: string;
  clusterEnabled: boolean;
}

/** Parses the reply of `COMMAND` / `COMMAND INFO` (Redis 7 layout; 6.x entries simply lack subcommands). */
export function catalogFromCommandReply(reply: RespValue): Pick<BackendFacts, 'commands' | 'containers'> {
  if (!Array.isArray(reply)) throw new Error('COMMAND did not return an array');
  const commands = new Map<string, CommandInfo>();
  const containers = new Set<string>();
  const add = (entry: RespValue) => {
    if (!Array.isArray(entry) || (!Buffer.isBuffer(entry[0]) && typeof entry[0] !== 'string')) return;
    const name = entry[0].toString().toLowerCase();
    const categories = Array.isArray(entry[6])
      ? entry[6].map((c) => String(c).replace(/^@/, '').toLowerCase())
      : [];
    commands.set(name, { name, categories });
    const subs = entry[9];
    if (Array.isArray(subs) && subs.length > 0) {
      containers.add(name);
      subs.forEach(add);
      // A container the parser does not split (a module's: FT.CONFIG, JSON.DEBUG) reaches the rules
      // under its own name, whatever subcommand it runs: it is decided as all of them.
      if (!REDIS_CONTAINER_COMMANDS.has(name)) {
        const prefix = `${name}|`;
        const unsplit = [...commands.values()].filter((c) => c.name.startsWith(prefix));
        commands.set(name, { name, categories, unsplit });
      }
    }
  };
  reply.forEach(add);
  return { commands, containers };
}

/** Version and mode from the reply of a bare `HELLO` (a flat key/value array in RESP2). */
export function helloFields(reply: RespValue): { version: string; clusterEnabled: boolean } {
  const fields = new Map<string, string>();
  if (Array.isArray(reply)) {
    for (let i = 0; i + 1 < reply.length; i += 2) fields.set(String(reply[i]), String(reply[i + 1]));
  }
  return { version: fields.get('version') ?? 'unknown', clusterEnabled: fields.get('mode') === 'cluster' };
}

function learnFailed(user: string, detail: string): DrawbridgeError {
  return new DrawbridgeError(
    'BACKEND_UNREACHABLE',
    `cannot learn the backend's commands as "${user}": ${detail}`,
    `let database user "${user}" run COMMAND and HELLO (ACL SETUSER ${user} +command +hello), or AUTH as one who can`,
  );
}

async function loadBackendFacts(opts: BackendConnectOptions): Promise<BackendFacts> {
  const user = opts.login.credential.user;
  const socket = await connectBackend(opts);
  const ask = async (command: string[]): Promise<RespValue> => {
    const reply = decodeReply(await roundTrip(socket, encodeCommand(command)));
    if (reply instanceof RespError) throw learnFailed(user, reply.message);
    return reply;
  };
  try {
    const catalog = catalogFromCommandReply(await ask(['COMMAND']));
    // HELLO (no protocol change) needs only @connection, unlike INFO (@dangerous in Redis 7).
    return { ...catalog, ...helloFields(await ask(['HELLO'])) };
  } catch (err) {
    throw err instanceof DrawbridgeError ? err : learnFailed(user, errorMessage(err));
  } finally {
    socket.destroy();
  }
}

const cache = new Map<string, Promise<BackendFacts>>();

/**
 * The facts for backend `key` (host:port), loaded with the first session's login. A failed load is
 * forgotten, so the next session (maybe as a user allowed to run COMMAND) tries again. A cluster's
 * are asked of whichever seed answers first, within the first-reply limit (cluster/seeds.ts).
 */
export function backendFacts(
  key: string,
  opts: BackendConnectOptions,
  cluster = false,
): Promise<BackendFacts> {
  let facts = cache.get(key);
  if (!facts) {
    facts = cluster
      ? fromAnySeed(opts.database.spec, ({ host, port }) => loadBackendFacts({ ...opts, host, port }))
      : loadBackendFacts(opts);
    cache.set(key, facts);
    facts.catch(() => cache.delete(key));
  }
  return facts;
}

/** The error Redis gives for a command (or subcommand) it does not know. */
export function unknownCommandReply(cmd: RedisCommand, facts: BackendFacts): Buffer {
  const bar = cmd.name.indexOf('|');
  if (bar > 0 && facts.commands.has(cmd.name.slice(0, bar))) {
    const sub = cmd.args[1]!.toString('utf8');
    return errorReply(
      'ERR',
      `unknown subcommand '${sub}'. Try ${cmd.name.slice(0, bar).toUpperCase()} HELP.`,
    );
  }
  const args = cmd.args
    .slice(1, 4)
    .map((a) => `'${a.toString('utf8', 0, 128)}' `)
    .join('');
  return errorReply(
    'ERR',
    `unknown command '${cmd.args[0]!.toString('utf8', 0, 128)}', with args beginning with: ${args}`,
  );
}
