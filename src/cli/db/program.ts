// The `kubectl db` command tree. kubectl finds `kubectl-db` on PATH and passes the rest of the line,
// so the global flags are kubectl's own spelling.
import { Command } from 'commander';
import { VERSION } from '../../build-info.js';
import { DrawbridgeError, errorMessage } from '../../errors.js';
import { connectCommand } from './connect.js';
import type { Io } from './io.js';
import { loginCommand } from './login.js';
import { logoutCommand } from './logout.js';
import { lsCommand } from './ls.js';
import { printableLine } from './printable.js';
import { proxyCommand } from './proxy.js';
import { configCommand, envCommand } from './settings.js';

export function kubectlDbProgram(io: Io): Command {
  const program = new Command('kubectl db')
    .description('log in to and connect to databases behind Drawbridge agents')
    .option('--kubeconfig <file>', 'path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .option('-n, --namespace <ns>', "namespace of the Database (default: the context's)")
    .version(VERSION, '--version', 'print the kubectl-db version')
    .showHelpAfterError()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .addHelpText(
      'after',
      `
Examples:
  kubectl db ls                                       # what you may reach, as which database users
  kubectl db -n shop login orders --db-user app       # a short-lived client certificate
  kubectl db -n shop connect orders                   # psql or redis-cli through the agent
  kubectl db -n shop connect orders -- -c 'select 1'  # arguments after -- go to the client
  kubectl db -n shop proxy orders                     # plaintext on 127.0.0.1 for GUI clients

Run kubectl db COMMAND --help for a command's flags.`,
    );
  const subcommands = [
    lsCommand,
    loginCommand,
    connectCommand,
    proxyCommand,
    envCommand,
    configCommand,
    logoutCommand,
  ];
  for (const sub of subcommands) {
    program.addCommand(sub(io).configureOutput({ writeOut: io.out, writeErr: io.err }));
  }
  program.addCommand(
    new Command('version')
      .description('print the kubectl-db version')
      .action(() => io.out(`kubectl-db ${VERSION} (Node.js ${process.version})\n`)),
  );
  return program;
}

/**
 * What the plugin prints for a failed command. Messages quote the cluster (a CSR denial quotes the
 * roles, API errors the objects), so control characters in them are shown, not obeyed, line breaks
 * included: a quoted one could otherwise print a line of its own that looks like ours.
 */
export function errorReport(err: unknown): string {
  const hint = err instanceof DrawbridgeError && err.hint ? `\n  ${printableLine(err.hint)}` : '';
  return `error: ${printableLine(errorMessage(err))}${hint}\n`;
}
