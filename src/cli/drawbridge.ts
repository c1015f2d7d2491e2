#!/usr/bin/env -S node --max-semi-space-size=2 --max-valid-polymorphic-map-count=8
// `drawbridge`: the agent, the controller and admin tools in one binary. The launcher line bounds V8's
// young generation (2 MB semi-spaces; V8's default grows them to 16 MB in a burst of handshakes and
// keeps them): an agent holds ~7 MB less at start and ~20 MB less with 1,000 idle sessions; only the
// Redis Cluster path measurably pays for it in CPU (README, Performance). Agent workers inherit it:
// node:cluster forks them with this process's options. `drawbridge agent --semi-space-mb N`
// (spec.agent.semiSpaceMB) runs the agent with another bound (cli/semi-space.ts).
// --max-valid-polymorphic-map-count=8: a session's sockets reach Node's stream code in more shapes than
// V8's default of 4, past which each property load there (every read and write) is a megamorphic one.
import { Command } from 'commander';
import { messageWithHint } from '../errors.js';
import { agentCommand } from './commands/agent.js';
import { caCommand } from './commands/ca.js';
import { controllerCommand } from './commands/controller.js';
import { crdsCommand } from './commands/crds.js';
import { iamCommand } from './commands/iam.js';

const program = new Command('drawbridge')
  .description('Least-privilege, audited access to PostgreSQL and Redis without long-lived passwords')
  .showHelpAfterError();

program.addCommand(agentCommand());
program.addCommand(caCommand());
program.addCommand(controllerCommand());
program.addCommand(crdsCommand());
program.addCommand(iamCommand());

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`drawbridge: ${messageWithHint(err)}\n`);
  process.exit(1);
});
