import { Command, InvalidArgumentError } from 'commander';
import { hostPort } from '../../api/agent-config.js';
import { AUDIT_MODES, type AuditMode } from '../../api/database.js';
import { duration, parseDuration } from '../../api/meta.js';
import type { RunningAgent } from '../../agent/standalone.js';
import { type Logger, createLogger } from '../../log.js';

interface AgentFlags {
  config?: string;
  database?: string;
  listen: string;
  tlsDir: string;
  metrics?: string;
  audit?: string;
  auditMode?: AuditMode;
  auditStallTimeout?: string;
  kubeconfig?: string;
  peers?: string[];
}

export function agentCommand(): Command {
  return new Command('agent')
    .description('run a database agent (proxy) in front of one Database')
    .option('--config <file>', 'standalone mode: YAML with an AgentConfig and the documents it uses')
    .option('--database <ns/name>', 'in-cluster mode: serve this Database, read through watches')
    .option('--listen <host:port>', 'in-cluster mode: client listener', '0.0.0.0:5432')
    .option('--tls-dir <dir>', 'in-cluster mode: tls.crt, tls.key, ca.crt', '/etc/drawbridge/tls')
    .option('--metrics <host:port>', 'in-cluster mode: serve /metrics and /healthz')
    .option('--audit <path>', 'in-cluster mode: audit log file ("-" for stdout)')
    .option(
      '--audit-mode <mode>',
      "in-cluster mode: required (sessions wait for a failing audit log, then end) or best-effort (events dropped and counted); a Database's spec.audit.mode wins",
      parseAuditMode,
    )
    .option(
      '--audit-stall-timeout <duration>',
      'in-cluster mode, required audit: how long sessions wait for a stuck audit log (default 30s)',
      parseStallTimeout,
    )
    .option('--kubeconfig <file>', 'in-cluster mode: kubeconfig (default: $KUBECONFIG, then in-cluster)')
    .option(
      '--peers <host:port,...>',
      'in-cluster mode: the other replicas (a headless Service name resolves to all); PostgreSQL cancels are relayed to them',
      parsePeers,
    )
    .action(async (opts: AgentFlags) => {
      if (!opts.config && !opts.database) {
        throw new Error('pass --config agent.yaml (standalone) or --database NAMESPACE/NAME (in cluster)');
      }
      const log = createLogger('agent');
      const running = opts.config
        ? await runStandalone(opts.config, log)
        : await runInCluster({ ...opts, database: opts.database! }, log);
      const shutdown = (signal: string) => {
        log.info({ signal }, 'draining sessions');
        void running.stop().then(() => process.exit(0));
      };
      process.once('SIGTERM', () => shutdown('SIGTERM'));
      process.once('SIGINT', () => shutdown('SIGINT'));
    });
}

// Each mode loads only its own modules: a standalone agent never pays for the Kubernetes client.
async function runStandalone(config: string, log: Logger): Promise<RunningAgent> {
  const [{ runStandaloneAgent }, { agentParts }] = await Promise.all([
    import('../../agent/standalone.js'),
    import('../../wiring.js'),
  ]);
  return runStandaloneAgent(config, log, agentParts);
}

async function runInCluster(opts: AgentFlags & { database: string }, log: Logger): Promise<RunningAgent> {
  const [{ runInClusterAgent }, { loadKubeConfig }, { agentParts }] = await Promise.all([
    import('../../agent/incluster.js'),
    import('./controller.js'),
    import('../../wiring.js'),
  ]);
  const kubeConfig = await loadKubeConfig(opts.kubeconfig);
  return runInClusterAgent({ ...opts, kubeConfig, log, parts: agentParts });
}

function parseAuditMode(mode: string): AuditMode {
  const modes: readonly string[] = AUDIT_MODES;
  if (!modes.includes(mode)) throw new InvalidArgumentError(`must be one of ${AUDIT_MODES.join(', ')}`);
  return mode as AuditMode;
}

function parseStallTimeout(text: string): string {
  if (!duration.safeParse(text).success || parseDuration(text) < 1000) {
    throw new InvalidArgumentError('must be a duration of at least 1s, e.g. 30s or 2m');
  }
  return text;
}

function parsePeers(list: string): string[] {
  const peers = list.split(',').filter(Boolean);
  for (const peer of peers) {
    const parsed = hostPort.safeParse(peer);
    if (!parsed.success) throw new InvalidArgumentError(`"${peer}" ${parsed.error.issues[0]!.message}`);
  }
  return peers;
}
