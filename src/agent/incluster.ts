// `drawbridge agent --database NS/NAME`: the agent inside Kubernetes. Its Database, the namespace's
// AccessRoles and DatabaseUsers, and the Secrets the Database names come from watches
// (incluster-watch.ts), kept by this process or, in a worker, by the primary that passes them on; its
// serving certificate from the Secret the controller mounts. Every change replaces the AgentState
// snapshot, and AgentState re-checks live sessions at once — a revoked role ends sessions within the
// 5 s promise. Workload tokens sent as passwords are verified with TokenReview, for this Database's own
// audience (drawbridge.dev/NS/NAME); refusals are counted and audited.
import { unwatchFile, watchFile } from 'node:fs';
import { join } from 'node:path';
import { type AuditMode, parseDuration, splitHostPort, workloadAudience } from '../api/runtime.js';
import { type TokenEvents, TokenReviewVerifier } from '../authn/tokenreview.js';
import { DrawbridgeError, errorMessage, isDrawbridgeError } from '../errors.js';
import type { Logger } from '../log.js';
import { Agent } from './agent.js';
import { type AuditSink, DEFAULT_AUDIT, JsonLinesAudit } from './audit.js';
import type { AgentParts } from './engine.js';
import type { StateSource } from './incluster-watch.js';
import { AgentMetrics } from './metrics.js';
import { serveMetrics } from './metrics-server.js';
import { newSessionId } from './sessions.js';
import type { RunningAgent } from './standalone.js';
import { AgentState } from './state.js';
import { type ServerTlsFiles, serverContextFromFiles } from './tls.js';
import type { WorkerLink } from './workers/worker.js';

export interface InClusterAgentOptions {
  /** `namespace/name` of the Database to serve. */
  database: string;
  listen: string;
  /** Directory with tls.crt, tls.key and ca.crt (the agent's TLS Secret, mounted). */
  tlsDir: string;
  /** `namespace/name` of that Secret, which the controller keeps: the fix for a bad file names it. */
  tlsSecret?: string;
  /** The watches (incluster-watch.ts), or in a worker its primary's (WorkerLink.clusterState). */
  source: StateSource;
  log: Logger;
  /** The engines and credential providers of this build (src/wiring.ts). */
  parts: AgentParts;
  metrics?: string;
  audit?: string;
  /** Defaults for a Database whose spec.audit sets none (Helm agents.audit). */
  auditMode?: AuditMode;
  auditStallTimeout?: string;
  /** auditMode (default required) is the platform's: the Database's spec.audit.mode is ignored. */
  auditModeEnforced?: boolean;
  /** Other replicas, `host:port` (the controller passes its headless peers Service). */
  peers?: string[];
  /** This process is one of the agent's workers (agent/workers); the primary serves /metrics. */
  worker?: WorkerLink;
}

export async function runInClusterAgent(opts: InClusterAgentOptions): Promise<RunningAgent> {
  const { source } = opts;
  const log = opts.log.child({ database: opts.database });
  const state = new AgentState(source.initial);
  source.onUpdate((next) => state.update(next));
  const tlsFiles = {
    certFile: join(opts.tlsDir, 'tls.crt'),
    keyFile: join(opts.tlsDir, 'tls.key'),
    clientCAFile: join(opts.tlsDir, 'ca.crt'),
  };
  const metrics = new AgentMetrics(true);
  metrics.setDatabase(opts.database);
  metrics.watchCertificates({ serving: tlsFiles.certFile, client_ca: tlsFiles.clientCAFile });
  metrics.observeState(source);
  const audit = new JsonLinesAudit(opts.audit ?? '-', log, {
    ...DEFAULT_AUDIT,
    ...(opts.auditMode ? { mode: opts.auditMode } : {}),
    ...(opts.auditStallTimeout ? { stallTimeoutMs: parseDuration(opts.auditStallTimeout) } : {}),
    fd: opts.worker?.auditFd,
  });
  const [namespace = '', name = ''] = opts.database.split('/');
  const agent = await Agent.create({
    parts: opts.parts,
    state,
    serverTls: controllerTls(tlsFiles, opts.tlsSecret),
    audit,
    log,
    metrics,
    tokenVerifier: new TokenReviewVerifier(source.tokenReview, {
      audience: workloadAudience(namespace, name),
      acceptShared: () => state.database.spec.workloads?.acceptSharedAudience ?? false,
      owner: `Database ${opts.database}`,
      events: tokenEvents(state, metrics, audit),
    }),
    peers: opts.peers ?? [],
    workers: opts.worker,
    roleBoundCertificates: true,
    ...(opts.auditModeEnforced ? { auditModeEnforced: opts.auditMode ?? DEFAULT_AUDIT.mode } : {}),
  });

  // Secret volumes are updated by swapping a symlink; polling notices that where fs.watch may not.
  watchFile(tlsFiles.certFile, { interval: 10_000 }, (cur, prev) => {
    if (cur.mtimeMs === prev.mtimeMs) return;
    try {
      agent.setServerTls(serverContextFromFiles(tlsFiles));
      log.info('serving certificate reloaded');
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'serving certificate reload failed; keeping the previous one');
    }
  });

  const [host, port] = splitHostPort(opts.listen);
  const bound = await agent.listen(host, Number(port));
  opts.worker?.exportMetrics(metrics.registry);
  const metricsServer =
    opts.metrics && !opts.worker ? await serveMetrics(opts.metrics, metrics, log) : undefined;
  return {
    agent,
    port: bound.port,
    async stop() {
      unwatchFile(tlsFiles.certFile);
      metricsServer?.close();
      await source.stop();
      await agent.stop();
    },
  };
}

/** Refused tokens are counted by reason and audited; logins on the shared audience are counted. */
function tokenEvents(state: AgentState, metrics: AgentMetrics, audit: AuditSink): TokenEvents {
  return {
    refused(reason, err, subject) {
      metrics.tokensRefused.inc({ reason });
      const { metadata, spec } = state.database;
      audit.emit({
        type: 'token.refused',
        sessionId: newSessionId(),
        database: metadata.name,
        protocol: spec.protocol,
        user: '',
        reason,
        message: err.message,
        // Unverified: who the token says it is, for finding the workload, never proof of who sent it.
        ...(subject ? { claimedSubject: subject } : {}),
      });
    },
    sharedAccepted() {
      metrics.tokensSharedAudience.inc();
    },
  };
}

/**
 * The serving context from the Secret the controller mounts. Its files are the controller's, not a path
 * the person chose: a bad one is fixed by having the controller issue them again, which is the hint.
 */
function controllerTls(files: ServerTlsFiles, secret: string | undefined) {
  try {
    return serverContextFromFiles(files);
  } catch (err) {
    if (!secret || !isDrawbridgeError(err, 'INVALID_CONFIG')) throw err;
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      err.message,
      `these files come from Secret ${secret}, which the controller keeps: delete it and the controller issues a new certificate and key (the agent pods roll onto them)`,
      { cause: err },
    );
  }
}
