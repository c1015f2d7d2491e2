// `kubectl db logout [NAME]`: deletes stored keys and certificates (one database, or all of the context).
import { Command } from 'commander';
import type { Io } from './io.js';
import { type GlobalOptions, loadTarget } from './kube.js';
import { removeLogins } from './store.js';

export function logoutCommand(io: Io): Command {
  return new Command('logout')
    .description("remove stored certificates: one database's, or every one for the current context")
    .argument('[name]', 'Database name')
    .action(async (name: string | undefined, _opts: unknown, cmd: Command) => {
      const target = loadTarget(cmd.optsWithGlobals<GlobalOptions>());
      const removed = await removeLogins({ context: target.context, namespace: target.namespace, name });
      io.out(
        removed.length
          ? `Logged out of ${removed.join(', ')} (context ${target.context}).\n`
          : `No stored logins${name ? ` for ${target.namespace}/${name}` : ''} in context ${target.context}.\n`,
      );
    });
}
