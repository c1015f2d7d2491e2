#!/usr/bin/env node
// `drawbridge`: the agent, the controller and admin tools in one binary.
import { Command } from 'commander';
import { agentCommand } from './commands/agent.js';
import { controllerCommand } from './commands/controller.js';
import { crdsCommand } from './commands/crds.js';
import { iamCommand } from './commands/iam.js';

const program = new Command('drawbridge')
  .description('Least-privilege, audited access to PostgreSQL and Redis without long-lived passwords')
  .showHelpAfterError();

program.addCommand(agentCommand());
program.addCommand(controllerCommand());
program.addCommand(crdsCommand());
program.addCommand(iamCommand());

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`drawbridge: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
