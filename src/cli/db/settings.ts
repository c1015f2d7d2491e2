// `kubectl db env NAME` and `kubectl db config NAME`: the connection settings of a logged-in database for
// clients we do not start ourselves (GUI tools, scripts, IDEs). Two ways in: through `kubectl db proxy`
// (plaintext on this machine's loopback, at the database's fixed proxy port), or straight to the agent
// with the client certificate from `kubectl db login` (from inside the cluster network).
import { Command, InvalidArgumentError } from 'commander';
import { backendAddress } from '../../api/database.js';
import type { Database } from '../../api/database.js';
import { agentHost } from '../../operator/names.js';
import { DrawbridgeError } from '../../errors.js';
import { UNSEEN } from '../../unseen.js';
import { parseHostPort } from './endpoint.js';
import { printableLine, printableOutput } from './printable.js';
import type { Io } from './io.js';
import { type GlobalOptions, getDatabase, loadTarget } from './kube.js';
import { defaultProxyPort } from './proxy.js';
import { type StoredLogin, requireLogin } from './store.js';

export interface Settings {
  namespace: string;
  name: string;
  protocol: Database['spec']['protocol'];
  user: string;
  database?: string;
  expiresAt: string;
  proxy: { host: string; port: number; url: string; command: string };
  direct?: {
    host: string;
    port: number;
    url: string;
    sslmode: 'verify-full';
    cert: string;
    key: string;
    ca: string;
  };
}

export function settingsOf(db: Database, login: StoredLogin): Settings {
  const { namespace = '', name } = db.metadata;
  const protocol = db.spec.protocol;
  const user = login.record.dbUser;
  const database = protocol === 'postgres' ? (backendAddress(db.spec).database ?? user) : undefined;
  const port = defaultProxyPort(protocol, namespace, name);
  const path = database ? `/${encodeURIComponent(database)}` : '';
  const url = (scheme: string, host: string, p: number, query = '') =>
    `${scheme}://${encodeURIComponent(user)}@${host}:${p}${path}${query}`;
  // The direct host is the agent Service's name, which verify-full checks its certificate against; only
  // the port comes from status. A host taken from status went into DATABASE_URL unencoded, so whoever may
  // write databases/status could append ?sslmode=disable&host=theirs and get the session in plaintext.
  const status = db.status?.endpoint ? parseHostPort(db.status.endpoint, 'status.endpoint') : undefined;
  const endpoint = status && { host: agentHost(namespace, name), port: status.port };
  const q = encodeURIComponent;
  const tlsQuery = `?sslmode=verify-full&sslcert=${q(login.certFile)}&sslkey=${q(login.keyFile)}&sslrootcert=${q(login.caFile)}`;
  return {
    namespace,
    name,
    protocol,
    user,
    ...(database ? { database } : {}),
    expiresAt: login.expiresAt.toISOString(),
    proxy: {
      host: '127.0.0.1',
      port,
      url:
        protocol === 'postgres'
          ? url('postgres', '127.0.0.1', port, '?sslmode=disable')
          : url('redis', '127.0.0.1', port),
      command: `kubectl db proxy ${name} -n ${namespace}`,
    },
    ...(endpoint
      ? {
          direct: {
            host: endpoint.host,
            port: endpoint.port,
            url:
              protocol === 'postgres'
                ? url('postgres', endpoint.host, endpoint.port, tlsQuery)
                : url('rediss', endpoint.host, endpoint.port),
            sslmode: 'verify-full' as const,
            cert: login.certFile,
            key: login.keyFile,
            ca: login.caFile,
          },
        }
      : {}),
  };
}

/**
 * Shell assignments: libpq's PG* variables for PostgreSQL, REDIS_* for Redis, and DATABASE_URL. Read on
 * a terminal as often as eval'ed, and a quoted value cannot be escaped without changing it: a value a
 * terminal would obey (the database name in spec.uri is whoever writes the Database's) is refused.
 */
export function envLines(s: Settings, direct: boolean): string[] {
  const quote = (v: string | number) => `'${String(v).replace(/'/g, `'\\''`)}'`;
  const via = direct ? s.direct : undefined;
  const pairs: [string, string | number][] =
    s.protocol === 'postgres'
      ? [
          ['PGHOST', via?.host ?? s.proxy.host],
          ['PGPORT', via?.port ?? s.proxy.port],
          ['PGUSER', s.user],
          ['PGDATABASE', s.database ?? s.user],
          ['PGSSLMODE', via ? 'verify-full' : 'disable'],
          ...(via
            ? ([
                ['PGSSLCERT', via.cert],
                ['PGSSLKEY', via.key],
                ['PGSSLROOTCERT', via.ca],
              ] as [string, string][])
            : []),
        ]
      : [
          ['REDIS_HOST', via?.host ?? s.proxy.host],
          ['REDIS_PORT', via?.port ?? s.proxy.port],
          ['REDIS_USER', s.user],
          ...(via
            ? ([
                ['REDIS_TLS_CERT', via.cert],
                ['REDIS_TLS_KEY', via.key],
                ['REDIS_TLS_CA', via.ca],
              ] as [string, string][])
            : []),
        ];
  pairs.push(['DATABASE_URL', via?.url ?? s.proxy.url]);
  for (const [name, v] of pairs) {
    const text = String(v);
    if (printableLine(text) === text && !UNSEEN.test(text)) continue;
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      `${name} of ${s.namespace}/${s.name} would hold control or format characters, which a terminal obeys or hides: ${printableLine(text)}`,
      `kubectl db config ${s.name} -o json shows the settings with them escaped; if the database name in spec.uri is not meant so, have the Database fixed`,
    );
  }
  const note = via
    ? `# ${s.namespace}/${s.name} straight to its agent, as ${s.user} (login valid until ${s.expiresAt})`
    : `# ${s.namespace}/${s.name} through \`${s.proxy.command}\` (run it first), as ${s.user}`;
  return [note, ...pairs.map(([k, v]) => `export ${k}=${quote(v)}`)];
}

async function load(cmd: Command, name: string): Promise<Settings> {
  const target = loadTarget(cmd.optsWithGlobals<GlobalOptions>());
  const login = await requireLogin({ context: target.context, namespace: target.namespace, name });
  return settingsOf(await getDatabase(target, name), login);
}

export function envCommand(io: Io): Command {
  return new Command('env')
    .description('print shell variables (PG*, REDIS_*, DATABASE_URL) to connect to a logged-in database')
    .argument('<name>', 'Database name')
    .option('--direct', 'straight to the agent with the client certificate (inside the cluster network)')
    .action(async (name: string, opts: { direct?: boolean }, self: Command) => {
      const s = await load(self, name);
      if (opts.direct && !s.direct) {
        io.err(`database ${s.namespace}/${s.name} has no status.endpoint yet; showing the proxy settings\n`);
      }
      io.out(`${envLines(s, !!opts.direct).join('\n')}\n`);
    });
}

export function configCommand(io: Io): Command {
  return new Command('config')
    .description('print the connection settings of a logged-in database (for GUI clients), as YAML or JSON')
    .argument('<name>', 'Database name')
    .option(
      '-o, --output <format>',
      'yaml or json',
      (v) => {
        if (v !== 'yaml' && v !== 'json') throw new InvalidArgumentError('must be yaml or json');
        return v;
      },
      'yaml',
    )
    .action(async (name: string, opts: { output: 'yaml' | 'json' }, self: Command) => {
      const s = await load(self, name);
      io.out(printableOutput(s, opts.output));
    });
}
