// The `drawbridge` command tree (cli/drawbridge.ts runs it).
import { Command } from 'commander';
import { VERSION } from '../../build-info.js';
import { agentCommand } from './agent.js';
import { caCommand } from './ca.js';
import { controllerCommand } from './controller.js';
import { crdsCommand } from './crds.js';
import { iamCommand } from './iam.js';

export function drawbridgeProgram(): Command {
  return new Command('drawbridge')
    .description('Least-privilege, audited access to PostgreSQL and Redis without long-lived passwords')
    .version(VERSION, '--version', 'print the drawbridge version')
    .showHelpAfterError()
    .addCommand(agentCommand())
    .addCommand(caCommand())
    .addCommand(controllerCommand())
    .addCommand(crdsCommand())
    .addCommand(iamCommand());
}
