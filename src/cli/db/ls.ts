// `kubectl db ls`: the Databases the caller may reach, with the database users their roles allow.
import { Command, InvalidArgumentError } from 'commander';
import type { z } from 'zod';
import { AccessRole, DatabaseUser } from '../../api/access.js';
import { Database } from '../../api/database.js';
import { CONDITION } from '../../api/database-status.js';
import type { Io } from './io.js';
import { printable, printableOutput } from './printable.js';
import { type GlobalOptions, listObjects, loadTarget, whoami } from './kube.js';
import { type NamespacePolicy, type Reachable, formatDuration, reachable } from './reach.js';
import { findLogin } from './store.js';
import { renderTable } from './table.js';

/** Objects the schema rejects are invisible to the agent and the signer too: leave them out here as well. */
function valid<S extends z.ZodTypeAny>(schema: S, items: unknown[]): z.output<S>[] {
  return items.flatMap((item) => {
    const parsed = schema.safeParse(item);
    return parsed.success ? [parsed.data] : [];
  });
}

function readiness(db: Database): string {
  const ready = db.status?.conditions?.find((c) => c.type === CONDITION.Ready);
  if (!ready) return 'Pending';
  return ready.status === 'True' ? 'Ready' : ready.reason;
}

function usersCell(row: Reachable): string {
  const users = row.dbUsers.join(',');
  return row.exceptUsers.length ? `${users} (not ${row.exceptUsers.join(',')})` : users;
}

async function loginCell(context: string, db: Database, now: number): Promise<string> {
  const login = await findLogin({ context, namespace: db.metadata.namespace ?? '', name: db.metadata.name });
  if (!login) return '-';
  if (login.expiresAt.getTime() <= now) return 'expired';
  return `${login.record.dbUser} (${formatDuration(login.expiresAt.getTime() - now)} left)`;
}

const OUTPUTS = ['table', 'json', 'yaml'] as const;
type Output = (typeof OUTPUTS)[number];

function output(value: string): Output {
  if (!(OUTPUTS as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`must be one of ${OUTPUTS.join(', ')}`);
  }
  return value as Output;
}

/** One row as data, for -o json|yaml: what the table shows, unabbreviated. */
async function record(context: string, row: Reachable, now: number) {
  const db = row.database;
  const login = await findLogin({ context, namespace: db.metadata.namespace ?? '', name: db.metadata.name });
  return {
    namespace: db.metadata.namespace ?? '',
    name: db.metadata.name,
    protocol: db.spec.protocol,
    dbUsers: row.dbUsers,
    exceptUsers: row.exceptUsers,
    dbNames: row.dbNames,
    maxSessionTTL: formatDuration(row.ttlMs),
    status: readiness(db),
    labels: db.metadata.labels ?? {},
    login: login
      ? {
          dbUser: login.record.dbUser,
          expiresAt: login.expiresAt.toISOString(),
          expired: login.expiresAt.getTime() <= now,
        }
      : null,
  };
}

export function lsCommand(io: Io): Command {
  return new Command('ls')
    .description('list the databases you may reach and the database users your roles allow')
    .option('-A, --all-namespaces', 'list databases in every namespace')
    .option('-l, --selector <selector>', 'only Databases with these labels, e.g. env=prod,team in (a,b)')
    .option('-o, --output <format>', 'table, json or yaml', output, 'table' as Output)
    .action(async (opts: { allNamespaces?: boolean; selector?: string; output: Output }, cmd: Command) => {
      const target = loadTarget(cmd.optsWithGlobals<GlobalOptions>());
      const ns = opts.allNamespaces ? undefined : target.namespace;
      const [identity, databases, roleItems, userItems] = await Promise.all([
        whoami(target.kc),
        listObjects(target.kc, 'databases', ns, opts.selector),
        listObjects(target.kc, 'accessroles', ns),
        listObjects(target.kc, 'databaseusers', ns),
      ]);
      const roles: AccessRole[] = valid(AccessRole, roleItems);
      const users: DatabaseUser[] = valid(DatabaseUser, userItems);
      const policyOf = (namespace: string): NamespacePolicy => ({
        roles: roles.filter((r) => r.metadata.namespace === namespace),
        users: users.filter((u) => u.metadata.namespace === namespace),
      });
      const rows = reachable(identity, valid(Database, databases), policyOf);
      const now = Date.now();
      if (opts.output !== 'table') {
        const items = await Promise.all(rows.map((row) => record(target.context, row, now)));
        io.out(printableOutput({ items }, opts.output));
        return;
      }
      if (rows.length === 0) {
        io.err(
          printable(
            `no databases reachable for user "${identity.user}" ${ns ? `in namespace ${ns}` : 'in any namespace'}` +
              ' (no DatabaseUser binds you to a role that allows one)\n',
          ),
        );
        return;
      }
      const headers = [
        ...(ns ? [] : ['NAMESPACE']),
        'NAME',
        'PROTOCOL',
        'DB USERS',
        'DB NAMES',
        'MAX TTL',
        'STATUS',
        'LOGGED IN',
      ];
      const table = await Promise.all(
        rows.map(async (row) => [
          ...(ns ? [] : [row.database.metadata.namespace ?? '']),
          row.database.metadata.name,
          row.database.spec.protocol,
          usersCell(row),
          row.dbNames.join(',') || '-',
          formatDuration(row.ttlMs),
          readiness(row.database),
          await loginCell(target.context, row.database, now),
        ]),
      );
      io.out(renderTable(headers, table));
    });
}
