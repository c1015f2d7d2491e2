// An in-process standalone agent for integration tests and benches, run exactly as
// `drawbridge agent --config agent.yaml` runs it: the helper writes the YAML stream (AgentConfig +
// the caller's Database, AccessRole, DatabaseUser and Secret documents) and TLS files to a temp dir,
// starts runStandaloneAgent on 127.0.0.1:0, and can rewrite the file to exercise live reload.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import type { AuditEvent } from '../../src/agent/audit.js';
import type { AgentParts } from '../../src/agent/engine.js';
import { type RunningAgent, runStandaloneAgent } from '../../src/agent/standalone.js';
import { type Logger, createLogger } from '../../src/log.js';
import { agentParts } from '../../src/wiring.js';

export interface AgentTls {
  /** The agent's serving certificate and key. */
  certPem: string;
  keyPem: string;
  /** CA that issued the client certificates the agent accepts. */
  clientCaPem: string;
}

export interface TestAgentOptions {
  /** Name of the Database document (in `docs`) this agent fronts. */
  database: string;
  /** Database, AccessRole, DatabaseUser and Secret documents, as plain objects. */
  docs: object[];
  tls: AgentTls;
  log?: Logger;
  /** Other replicas (`host:port`), written to AgentConfig.spec.peers. */
  peers?: string[];
  /** AgentConfig.spec.limits (over the Database's spec.agent.limits). */
  limits?: object;
  /** Where /metrics is served (`host:port`), written to AgentConfig.spec.metrics. */
  metrics?: string;
  /** AgentConfig.spec.audit beyond the default file in the agent's directory. */
  audit?: { path?: string; mode?: 'required' | 'best-effort'; stallTimeout?: string; bufferBytes?: number };
  /** The agent's engines and credential providers: the real build's unless a test swaps one. */
  parts?: AgentParts;
}

export interface TestAgent {
  readonly host: string;
  readonly port: number;
  readonly dir: string;
  readonly configPath: string;
  readonly auditPath: string;
  readonly running: RunningAgent;
  /** Rewrites agent.yaml with new documents; the agent notices within ~1 s (it polls the file). */
  writeDocs(docs: object[]): Promise<void>;
  /** Audit events written so far (the sink buffers: allow a moment after the fact). */
  auditEvents(): Promise<AuditEvent[]>;
  /** Stops the agent (drain `drainMs`) and removes the temp dir. Safe to call twice. */
  stop(drainMs?: number): Promise<void>;
}

export interface AgentFiles {
  configPath: string;
  auditPath: string;
  /** Rewrites agent.yaml with new documents (the AgentConfig stays). */
  writeDocs(docs: object[]): Promise<void>;
}

/** Writes TLS files and agent.yaml (listening on `listen`) into `dir`, for an in-process or CLI agent. */
export async function writeAgentConfig(
  dir: string,
  opts: Omit<TestAgentOptions, 'log' | 'parts'> & { listen?: string },
): Promise<AgentFiles> {
  const file = (name: string) => path.join(dir, name);
  await writeFile(file('tls.crt'), opts.tls.certPem);
  await writeFile(file('tls.key'), opts.tls.keyPem, { mode: 0o600 });
  await writeFile(file('client-ca.crt'), opts.tls.clientCaPem);
  const configPath = file('agent.yaml');
  const auditPath = opts.audit?.path ?? file('audit.jsonl');
  const agentConfig = {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'AgentConfig',
    metadata: { name: 'test-agent' },
    spec: {
      listen: opts.listen ?? '127.0.0.1:0',
      database: opts.database,
      tls: { certFile: file('tls.crt'), keyFile: file('tls.key'), clientCAFile: file('client-ca.crt') },
      audit: { ...opts.audit, path: auditPath },
      ...(opts.peers ? { peers: opts.peers } : {}),
      ...(opts.limits ? { limits: opts.limits } : {}),
      ...(opts.metrics ? { metrics: opts.metrics } : {}),
    },
  };
  const writeDocs = (docs: object[]) =>
    writeFile(configPath, [agentConfig, ...docs].map((d) => stringify(d)).join('---\n'));
  await writeDocs(opts.docs);
  return { configPath, auditPath, writeDocs };
}

export async function startTestAgent(opts: TestAgentOptions): Promise<TestAgent> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-agent-'));
  const { configPath, auditPath, writeDocs } = await writeAgentConfig(dir, opts);

  const log = opts.log ?? createLogger('test-agent', process.env.DRAWBRIDGE_LOG_LEVEL ?? 'warn');
  let running: RunningAgent;
  try {
    running = await runStandaloneAgent(configPath, log, opts.parts ?? agentParts);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  let stopped = false;
  return {
    host: '127.0.0.1',
    port: running.port,
    dir,
    configPath,
    auditPath,
    running,
    writeDocs,
    async auditEvents() {
      const text = await readFile(auditPath, 'utf8').catch(() => '');
      return text
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as AuditEvent);
    },
    async stop(drainMs = 500) {
      if (stopped) return;
      stopped = true;
      await running.stop(drainMs);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
