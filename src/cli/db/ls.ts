// `kubectl db ls`: the Databases the caller may reach, with the database users their roles allow.
import { Command } from 'commander';
import type { z } from 'zod';
import { AccessRole, DatabaseUser } from '../../api/access.js';
import { Database } from '../../api/database.js';
import type { Io } from './io.js';
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
  const ready = db.status?.conditions?.find((c) => c.type === 'Ready');
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

export function lsCommand(io: Io): Command {
  return new Command('ls')
    .description('list the databases you may reach and the database users your roles allow')
    .option('-A, --all-namespaces', 'list databases in every namespace')
    .action(async (opts: { allNamespaces?: boolean }, cmd: Command) => {
      const target = loadTarget(cmd.optsWithGlobals<GlobalOptions>());
      const ns = opts.allNamespaces ? undefined : target.namespace;
      const [identity, databases, roleItems, userItems] = await Promise.all([
        whoami(target.kc),
        listObjects(target.kc, 'databases', ns),
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
      if (rows.length === 0) {
        io.err(
          `no databases reachable for user "${identity.user}" ${ns ? `in namespace ${ns}` : 'in any namespace'}` +
            ' (no DatabaseUser binds you to a role that allows one)\n',
        );
        return;
      }
      const now = Date.now();
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
