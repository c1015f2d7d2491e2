import { Command } from 'commander';
import { runStandaloneAgent } from '../../agent/standalone.js';
import { createLogger } from '../../log.js';

export function agentCommand(): Command {
  return new Command('agent')
    .description('run a database agent (proxy) in front of one Database')
    .option('--config <file>', 'standalone mode: YAML with an AgentConfig and the documents it uses')
    .action(async (opts: { config?: string }) => {
      const log = createLogger('agent');
      if (!opts.config) throw new Error('pass --config agent.yaml (standalone mode)');
      const running = await runStandaloneAgent(opts.config, log);
      const shutdown = (signal: string) => {
        log.info({ signal }, 'draining sessions');
        void running.stop().then(() => process.exit(0));
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });
}
