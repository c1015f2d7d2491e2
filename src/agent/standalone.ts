// `drawbridge agent --config agent.yaml`: the agent on a plain host, configured by one YAML stream
// (config-file.ts reads and watches it: here when the agent is one process, in the primary when it has
// workers, which then take each config from the primary and never load the YAML parser or schemas).
import type { AgentConfig } from '../api/agent-config.js';
import { parseDuration, splitHostPort } from '../api/runtime.js';
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { Agent } from './agent.js';
import { JsonLinesAudit } from './audit.js';
import type { AgentParts } from './engine.js';
import { AgentMetrics } from './metrics.js';
import { serveMetrics } from './metrics-server.js';
import { AgentState, type StateSnapshot } from './state.js';
import { serverContextFromFiles } from './tls.js';
import type { WorkerLink } from './workers/worker.js';

/** What a standalone agent serves: its AgentConfig's spec, and the state the file's documents make. */
export interface StandaloneConfig {
  spec: AgentConfig['spec'];
  state: StateSnapshot;
}

/** The config file's current config, then each good edit of it, in order. */
export interface ConfigSource {
  readonly path: string;
  readonly initial: StandaloneConfig;
  onUpdate(listener: (next: StandaloneConfig) => void): void;
  stop(): void;
}

export interface RunningAgent {
  agent: Agent;
  port: number;
  /** Stops accepting and ends sessions still open after `drainMs` (the agent's default when unset). */
  stop(drainMs?: number): Promise<void>;
}

/** `worker`: this process is one of the agent's workers (agent/workers); the primary serves /metrics. */
export async function runStandaloneAgent(
  path: string,
  log: Logger,
  parts: AgentParts,
  worker?: WorkerLink,
): Promise<RunningAgent> {
  const source = worker
    ? await worker.standaloneConfig(path)
    : await (await import('./config-file.js')).watchConfigFile(path, log);
  const { spec } = source.initial;
  const state = new AgentState(source.initial.state);
  const metrics = new AgentMetrics(true);
  metrics.setDatabase(spec.database);
  metrics.watchCertificates({ serving: spec.tls.certFile, client_ca: spec.tls.clientCAFile });
  const agent = await Agent.create({
    parts,
    state,
    serverTls: serverContextFromFiles(spec.tls),
    audit: new JsonLinesAudit(spec.audit.path, log, {
      mode: spec.audit.mode,
      stallTimeoutMs: parseDuration(spec.audit.stallTimeout),
      bufferBytes: spec.audit.bufferBytes,
      fd: worker?.auditFd,
    }),
    log,
    metrics,
    peers: spec.peers,
    limits: spec.limits,
    workers: worker,
  });
  const [host, portText] = splitHostPort(spec.listen);
  const { port } = await agent.listen(host, Number(portText));
  worker?.exportMetrics(metrics.registry);
  const metricsServer = spec.metrics && !worker ? await serveMetrics(spec.metrics, metrics, log) : undefined;

  source.onUpdate((next) => {
    try {
      agent.setServerTls(serverContextFromFiles(next.spec.tls));
      agent.setPeers(next.spec.peers);
      agent.setLimits(next.spec.limits);
      state.update(next.state);
      log.info({ path }, 'config reloaded');
    } catch (err) {
      log.error({ path, error: errorMessage(err) }, 'config reload failed; keeping the previous config');
    }
  });

  return {
    agent,
    port,
    async stop(drainMs?: number) {
      source.stop();
      metricsServer?.close();
      await agent.stop(drainMs);
    },
  };
}
