// What connect and proxy both need before moving a byte: the Database, a valid login for it, and a way
// to reach its agent.
import type { Command } from 'commander';
import type { Database } from '../../api/database.js';
import { type Endpoint, type EndpointOptions, resolveEndpoint } from './endpoint.js';
import { type GlobalOptions, type KubeTarget, getDatabase, loadTarget } from './kube.js';
import { type DatabaseRef, type StoredLogin, requireLogin } from './store.js';

export interface OpenDatabase {
  target: KubeTarget;
  ref: DatabaseRef;
  db: Database;
  login: StoredLogin;
  endpoint: Endpoint;
}

export async function openDatabase(cmd: Command, name: string, opts: EndpointOptions): Promise<OpenDatabase> {
  const target = loadTarget(cmd.optsWithGlobals<GlobalOptions>());
  const ref = { context: target.context, namespace: target.namespace, name };
  // The login is checked first: it needs no API call and its error is the likeliest fix.
  const login = await requireLogin(ref);
  const db = await getDatabase(target, name);
  const endpoint = await resolveEndpoint(target.kc, db, opts);
  return { target, ref, db, login, endpoint };
}

/** The options connect and proxy share, for reaching the agent directly. */
export function endpointOptions(cmd: Command): Command {
  return cmd
    .option('--endpoint <host:port>', "the agent's address (default: status.endpoint, else a port-forward)")
    .option(
      '--tls-server-name <name>',
      "name to verify in the agent's certificate (default: the agent Service's, drawbridge-NAME.NAMESPACE.svc)",
    );
}
