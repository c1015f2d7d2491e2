import cluster from 'node:cluster';
import { appendFileSync, writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
// The API's plain values, not its schemas: every worker runs this command again (api/runtime.ts).
import {
  AUDIT_MODES,
  type AuditMode,
  DURATION,
  HOST_PORT,
  HOST_PORT_MESSAGE,
  parseDuration,
} from '../../api/runtime.js';
import type { RunningAgent } from '../../agent/standalone.js';
import type { WorkerLink } from '../../agent/workers/worker.js';
import { DrawbridgeError, messageWithHint } from '../../errors.js';
import { type Logger, createLogger } from '../../log.js';
import { ensureSemiSpace } from '../semi-space.js';

export interface AgentFlags {
  config?: string;
  database?: string;
  listen: string;
  tlsDir: string;
  metrics?: string;
  audit?: string;
  auditMode?: AuditMode;
  auditStallTimeout?: string;
  auditModeEnforced?: boolean;
  kubeconfig?: string;
  peers?: string[];
  workers?: number;
  semiSpaceMb?: number;
  terminationLog?: string;
}

export function agentCommand(): Command {
  return new Command('agent')
    .description('run a database agent (proxy) in front of one Database')
    .addOption(
      new Option(
        '--config <file>',
        'standalone mode: YAML with an AgentConfig and the documents it uses',
      ).conflicts('database'),
    )
    .option(
      '--database <ns/name>',
      'in-cluster mode: serve this Database, read through watches',
      parseDatabaseRef,
    )
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
    .option(
      '--audit-mode-enforced',
      "in-cluster mode: --audit-mode is the platform's: a Database's spec.audit.mode is ignored (Helm agents.audit.enforce)",
    )
    .option('--kubeconfig <file>', 'in-cluster mode: kubeconfig (default: $KUBECONFIG, then in-cluster)')
    .option(
      '--peers <host:port,...>',
      'in-cluster mode: the other replicas (a headless Service name resolves to all); PostgreSQL cancels are relayed to them',
      parsePeers,
    )
    .option(
      '--workers <n>',
      'processes sharing the listening port (default: the CPUs the container may use, from its cgroup CPU quota)',
      parseWorkers,
    )
    .addOption(
      new Option(
        '--semi-space-mb <n>',
        "bound of V8's young-generation semi-spaces of each agent process, 1-64 MB (default: the launcher's --max-semi-space-size)",
      )
        .env('DRAWBRIDGE_SEMI_SPACE_MB')
        .argParser(parseSemiSpace),
    )
    .option(
      '--termination-log <file>',
      "where a fatal start-up error is written (the container's terminationMessagePath: Kubernetes shows it in the pod's status, and the controller in the Database's)",
    )
    .addHelpText(
      'after',
      `
Examples:
  # A plain host: agent.yaml as in the README's "Run an agent on a plain host"
  drawbridge agent --config agent.yaml
  # In a pod, as the controller starts it (kubectl -n shop get deploy drawbridge-orders -o yaml)
  drawbridge agent --database shop/orders --listen 0.0.0.0:5432 --tls-dir /etc/drawbridge/tls`,
    )
    .action(async (opts: AgentFlags) => {
      try {
        refuseInClusterAudit(opts);
        ensureSemiSpace(opts.semiSpaceMb);
        await runAgent(opts);
      } catch (err) {
        // A worker's error lands here too (it shares the file): the primary's crash-loop line follows it.
        writeTerminationLog(opts.terminationLog, messageWithHint(err));
        throw err;
      }
    });
}

/**
 * A standalone agent's audit is its config file's (AgentConfig spec.audit, and a Database's spec.audit
 * beside it): whoever edits the file sets audit.path too, so a flag pinning the mode would guard
 * nothing, and one silently ignored would look like it does.
 */
export function refuseInClusterAudit(opts: AgentFlags): void {
  if (!opts.config) return;
  const flags: [string, unknown][] = [
    ['--audit', opts.audit],
    ['--audit-mode', opts.auditMode],
    ['--audit-stall-timeout', opts.auditStallTimeout],
    ['--audit-mode-enforced', opts.auditModeEnforced],
  ];
  const given = flags.filter(([, v]) => v !== undefined).map(([flag]) => flag);
  if (given.length === 0) return;
  throw new DrawbridgeError(
    'INVALID_CONFIG',
    `${given.join(', ')} ${given.length > 1 ? 'are' : 'is'} for in-cluster agents (--database); a standalone agent takes its audit settings from --config`,
    'set spec.audit (path, mode, stallTimeout) of the AgentConfig; a Database\'s spec.audit.mode in the same file wins over its mode, so keep that file writable only by whoever owns the audit (README, "Run an agent on a plain host")',
  );
}

async function runAgent(opts: AgentFlags): Promise<void> {
  if (!opts.config && !opts.database) {
    throw new Error('pass --config agent.yaml (standalone) or --database NAMESPACE/NAME (in cluster)');
  }
  const log = createLogger('agent');
  if (cluster.isPrimary) {
    const { defaultWorkers } = await import('../../agent/workers/cpu-quota.js');
    const workers = opts.workers ?? defaultWorkers();
    // One worker is the agent itself, in this process: no primary in between.
    if (workers > 1) return runPrimary(opts, workers, log);
  }
  const { WorkerLink } = await import('../../agent/workers/worker.js');
  const worker = cluster.isWorker ? new WorkerLink() : undefined;
  const wlog = worker ? log.child({ worker: worker.index }) : log;
  const running = opts.config
    ? await runStandalone(opts.config, wlog, worker)
    : await runInCluster({ ...opts, database: opts.database!, worker }, wlog);
  onShutdown(log, worker, () => running.stop());
}

/**
 * The kubelet keeps at most 4096 bytes of it. The agent never logs a secret, and what is written here is
 * what it logs (an error's message and fix), so none reaches the pod's or the Database's status.
 */
function writeTerminationLog(file: string | undefined, text: string, append = false): void {
  if (!file) return;
  try {
    (append ? appendFileSync : writeFileSync)(file, `${text}\n`.slice(0, 4096));
  } catch {
    // Best effort: the same text is in the log, and the exit goes ahead either way.
  }
}

/**
 * Drains on SIGTERM / SIGINT, then exits. A worker drains when its primary says so (a terminal's
 * Ctrl+C reaches the whole process group; the primary must not see its workers leave unasked).
 */
function onShutdown(
  log: Logger,
  worker: { onDrain(stop: () => void): void } | undefined,
  stop: () => Promise<void>,
) {
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining sessions');
    void stop().then(() => process.exit(0));
  };
  if (worker) {
    worker.onDrain(() => shutdown('drain'));
    for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => undefined);
    return;
  }
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

/** The primary of an agent of `workers` processes: forks them (re-running this command) and supervises. */
async function runPrimary(opts: AgentFlags, workers: number, log: Logger): Promise<void> {
  const { WorkerPool } = await import('../../agent/workers/primary.js');
  const { DEFAULT_AUDIT } = await import('../../agent/audit.js');
  let pool: InstanceType<typeof WorkerPool>;
  // Exit non-zero so the kubelet (or systemd) restarts the container and shows the crash loop.
  const onCrashLoop = (reason: string) => {
    log.fatal(
      { reason },
      "every agent worker keeps exiting at start: giving up (see the workers' errors above)",
    );
    // Once every worker is gone: one still starting would write its error over this line.
    void pool.stop().then(() => {
      writeTerminationLog(opts.terminationLog, `${reason}: giving up`, true);
      process.exit(1);
    });
  };
  if (opts.config) {
    // Read, validated and watched here; the workers take each config from this process.
    const { watchConfigFile } = await import('../../agent/config-file.js');
    const config = await watchConfigFile(opts.config, log);
    const { spec } = config.initial;
    const audit = { path: spec.audit.path, bufferBytes: spec.audit.bufferBytes };
    const { database, metrics } = spec;
    pool = new WorkerPool({ workers, log, database, metrics, audit, config, onCrashLoop });
  } else {
    const audit = { path: opts.audit ?? '-', bufferBytes: DEFAULT_AUDIT.bufferBytes! };
    const state = await watchState(opts.database!, opts.kubeconfig, log);
    const database = opts.database!;
    pool = new WorkerPool({ workers, log, database, metrics: opts.metrics, audit, state, onCrashLoop });
  }
  log.info({ workers }, 'starting agent workers');
  await pool.start();
  onShutdown(log, undefined, () => pool.stop());
}

// Each mode loads only its own modules: a standalone agent never pays for the Kubernetes client.
async function runStandalone(config: string, log: Logger, worker?: WorkerLink): Promise<RunningAgent> {
  const [{ runStandaloneAgent }, { agentParts }] = await Promise.all([
    import('../../agent/standalone.js'),
    import('../../wiring.js'),
  ]);
  return runStandaloneAgent(config, log, agentParts, worker);
}

// A worker takes its state from the primary's watches: only the process that watches loads the client.
async function runInCluster(
  opts: AgentFlags & { database: string; worker?: WorkerLink },
  log: Logger,
): Promise<RunningAgent> {
  const [{ runInClusterAgent }, { agentParts }, { agentTlsSecretName }] = await Promise.all([
    import('../../agent/incluster.js'),
    import('../../wiring.js'),
    import('../../operator/names.js'),
  ]);
  const source = opts.worker
    ? await opts.worker.clusterState()
    : await watchState(opts.database, opts.kubeconfig, log);
  // The controller mounts the Secret it keeps for this Database at --tls-dir.
  const [namespace, name] = opts.database.split('/');
  const tlsSecret = `${namespace}/${agentTlsSecretName(name!)}`;
  return runInClusterAgent({ ...opts, source, log, parts: agentParts, tlsSecret });
}

async function watchState(database: string, kubeconfig: string | undefined, log: Logger) {
  const [{ watchAgentState }, { KubeClient }, credentials] = await Promise.all([
    import('../../agent/incluster-watch.js'),
    import('../../kube/client.js'),
    import('../../kube/credentials.js'),
  ]);
  const env = process.env;
  // In a pod (no kubeconfig asked for), the service account directly: client-node is ~70 MB of RSS.
  // Tests point the agent at a service account directory of their own; the chart never sets that.
  const client =
    !kubeconfig && !env.KUBECONFIG && credentials.inPod(env)
      ? new KubeClient(credentials.serviceAccountCredentials(env, env.DRAWBRIDGE_TEST_SERVICE_ACCOUNT_DIR))
      : await KubeClient.fromKubeConfig(await (await import('./controller.js')).loadKubeConfig(kubeconfig));
  return watchAgentState({ database, client, log: log.child({ database }) });
}

function parseDatabaseRef(ref: string): string {
  if (!/^[^/\s]+\/[^/\s]+$/.test(ref)) {
    throw new InvalidArgumentError('must be NAMESPACE/NAME of a Database, e.g. shop/orders');
  }
  return ref;
}

function parseAuditMode(mode: string): AuditMode {
  const modes: readonly string[] = AUDIT_MODES;
  if (!modes.includes(mode)) throw new InvalidArgumentError(`must be one of ${AUDIT_MODES.join(', ')}`);
  return mode as AuditMode;
}

function parseStallTimeout(text: string): string {
  if (!DURATION.test(text) || parseDuration(text) < 1000) {
    throw new InvalidArgumentError('must be a duration of at least 1s, e.g. 30s or 2m');
  }
  return text;
}

function parseWorkers(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 256)
    throw new InvalidArgumentError('must be a whole number from 1 to 256');
  return n;
}

function parseSemiSpace(text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > 64)
    throw new InvalidArgumentError('must be a whole number from 1 to 64');
  return n;
}

function parsePeers(list: string): string[] {
  const peers = list.split(',').filter(Boolean);
  for (const peer of peers) {
    if (!HOST_PORT.test(peer)) throw new InvalidArgumentError(`"${peer}" ${HOST_PORT_MESSAGE}`);
  }
  return peers;
}
