// The `kubectl db` command tree. kubectl finds `kubectl-db` on PATH and passes the rest of the line,
// so the global flags are kubectl's own spelling.
import { Command } from 'commander';
import { connectCommand } from './connect.js';
import type { Io } from './io.js';
import { loginCommand } from './login.js';
import { logoutCommand } from './logout.js';
import { lsCommand } from './ls.js';
import { proxyCommand } from './proxy.js';

export function kubectlDbProgram(io: Io): Command {
  const program = new Command('kubectl db')
    .description('log in to and connect to databases behind Drawbridge agents')
    .option('--kubeconfig <file>', 'path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)')
    .option('--context <name>', 'kubeconfig context to use')
    .option('-n, --namespace <ns>', "namespace of the Database (default: the context's)")
    .showHelpAfterError()
    .configureOutput({ writeOut: io.out, writeErr: io.err });
  for (const sub of [lsCommand, loginCommand, connectCommand, proxyCommand, logoutCommand]) {
    program.addCommand(sub(io).configureOutput({ writeOut: io.out, writeErr: io.err }));
  }
  return program;
}
