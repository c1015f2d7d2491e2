// `drawbridge agent --config agent.yaml`: the agent on a plain host, configured by one YAML stream.
// The file is re-read when it changes; a broken edit is reported and the last good config stays.
import { watchFile, unwatchFile } from 'node:fs';
import { type ConfigBundle, loadConfigFile } from '../api/config.js';
import { secretValues } from '../api/agent-config.js';
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

export function snapshotOf(bundle: ConfigBundle, source: string): StateSnapshot {
  const agent = bundle.agent;
  if (!agent) throw new Error(`${source}: no AgentConfig document; add one (kind: AgentConfig)`);
  const database = bundle.databases.find((d) => d.metadata.name === agent.spec.database)!;
  return {
    database,
    roles: bundle.roles,
    users: bundle.users,
    secrets: new Map(bundle.secrets.map((s) => [s.metadata.name, secretValues(s)])),
  };
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
  const bundle = await loadConfigFile(path);
  const config = bundle.agent!;
  const state = new AgentState(snapshotOf(bundle, path));
  const metrics = new AgentMetrics(true);
  metrics.setDatabase(config.spec.database);
  metrics.watchCertificates({ serving: config.spec.tls.certFile, client_ca: config.spec.tls.clientCAFile });
  const agent = await Agent.create({
    parts,
    state,
    serverTls: serverContextFromFiles(config.spec.tls),
    audit: new JsonLinesAudit(config.spec.audit.path, log, {
      mode: config.spec.audit.mode,
      stallTimeoutMs: parseDuration(config.spec.audit.stallTimeout),
      bufferBytes: config.spec.audit.bufferBytes,
      fd: worker?.auditFd,
    }),
    log,
    metrics,
    peers: config.spec.peers,
    limits: config.spec.limits,
    workers: worker,
  });
  const [host, portText] = splitHostPort(config.spec.listen);
  const { port } = await agent.listen(host, Number(portText));
  worker?.exportMetrics(metrics.registry);
  const metricsServer =
    config.spec.metrics && !worker ? await serveMetrics(config.spec.metrics, metrics, log) : undefined;

  const reload = async () => {
    try {
      const next = await loadConfigFile(path);
      agent.setServerTls(serverContextFromFiles(next.agent!.spec.tls));
      agent.setPeers(next.agent!.spec.peers);
      agent.setLimits(next.agent!.spec.limits);
      state.update(snapshotOf(next, path));
      log.info({ path }, 'config reloaded');
    } catch (err) {
      log.error({ path, error: errorMessage(err) }, 'config reload failed; keeping the previous config');
    }
  };
  // Polling survives editors and ConfigMap mounts that replace the file instead of writing it.
  watchFile(path, { interval: 1000 }, (cur, prev) => {
    if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) void reload();
  });

  return {
    agent,
    port,
    async stop(drainMs?: number) {
      unwatchFile(path);
      metricsServer?.close();
      await agent.stop(drainMs);
    },
  };
}
