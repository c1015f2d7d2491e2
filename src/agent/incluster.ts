// `drawbridge agent --database NS/NAME`: the agent inside Kubernetes. Its Database, the namespace's
// AccessRoles and DatabaseUsers, and the Secrets the Database names come from watches; its serving
// certificate from the Secret the controller mounts. Every change rebuilds the AgentState snapshot,
// and AgentState re-checks live sessions at once — a revoked role ends sessions within the 5 s promise.
// Workload tokens sent as passwords are verified with TokenReview (audience drawbridge.dev).
import { unwatchFile, watchFile } from 'node:fs';
import { join } from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { secretValues, type Secret } from '../api/agent-config.js';
import { type AuditMode, Database, referencedSecrets } from '../api/database.js';
import { parseDuration } from '../api/meta.js';
import { formatIssue } from '../api/validate.js';
import { TokenReviewVerifier } from '../authn/tokenreview.js';
import { DrawbridgeError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import { KubeClient } from '../kube/client.js';
import { Informer } from '../kube/informer.js';
import type { KubeObject } from '../kube/types.js';
import { validPolicy } from '../authz/policy.js';
import { parseAs } from '../kube/parse.js';
import { Agent } from './agent.js';
import { DEFAULT_AUDIT, JsonLinesAudit } from './audit.js';
import type { AgentParts } from './engine.js';
import { AgentMetrics } from './metrics.js';
import { serveMetrics } from './metrics-server.js';
import type { RunningAgent } from './standalone.js';
import { splitHostPort } from './standalone.js';
import { AgentState, type StateSnapshot } from './state.js';
import { serverContextFromFiles } from './tls.js';
import type { WorkerLink } from './workers/worker.js';

export interface InClusterAgentOptions {
  /** `namespace/name` of the Database to serve. */
  database: string;
  listen: string;
  /** Directory with tls.crt, tls.key and ca.crt (the agent's TLS Secret, mounted). */
  tlsDir: string;
  kubeConfig: KubeConfig;
  log: Logger;
  /** The engines and credential providers of this build (src/wiring.ts). */
  parts: AgentParts;
  metrics?: string;
  audit?: string;
  /** Defaults for a Database whose spec.audit sets none (Helm agents.audit). */
  auditMode?: AuditMode;
  auditStallTimeout?: string;
  /** Other replicas, `host:port` (the controller passes its headless peers Service). */
  peers?: string[];
  /** This process is one of the agent's workers (agent/workers); the primary serves /metrics. */
  worker?: WorkerLink;
}

function parseDatabaseRef(ref: string): { namespace: string; name: string } {
  const m = /^([a-z0-9][-a-z0-9]*)\/([a-z0-9][-a-z0-9.]*)$/.exec(ref);
  if (!m) throw new DrawbridgeError('INVALID_CONFIG', `--database "${ref}" must be NAMESPACE/NAME`);
  return { namespace: m[1]!, name: m[2]! };
}

/** Watches of the Secrets the Database names; the set follows the Database as it changes. */
class SecretWatches {
  private readonly watches = new Map<string, Informer<KubeObject>>();

  constructor(
    private readonly client: KubeClient,
    private readonly namespace: string,
    private readonly log: Logger,
    private readonly changed: () => void,
  ) {}

  async follow(names: string[]): Promise<void> {
    for (const [name, inf] of this.watches) {
      if (!names.includes(name)) {
        this.watches.delete(name);
        await inf.stop();
      }
    }
    const started: Promise<void>[] = [];
    for (const name of names.filter((n) => !this.watches.has(n))) {
      const inf = new Informer<KubeObject>(this.client, 'Secret', {
        namespace: this.namespace,
        // A single-object watch: RBAC can then limit the agent to exactly these Secrets (resourceNames).
        fieldSelector: `metadata.name=${name}`,
        log: this.log,
      });
      inf.onChange(this.changed);
      this.watches.set(name, inf);
      started.push(inf.start());
    }
    await Promise.all(started);
  }

  values(): Map<string, Record<string, string>> {
    const out = new Map<string, Record<string, string>>();
    for (const [name, inf] of this.watches) {
      const s = inf.get(name, this.namespace);
      if (s) out.set(name, secretValues(s as unknown as Secret));
    }
    return out;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.watches.values()].map((w) => w.stop()));
  }
}

export async function runInClusterAgent(opts: InClusterAgentOptions): Promise<RunningAgent> {
  const { namespace, name } = parseDatabaseRef(opts.database);
  const log = opts.log.child({ database: opts.database });
  const client = await KubeClient.fromKubeConfig(opts.kubeConfig);
  const watch = (kind: 'Database' | 'AccessRole' | 'DatabaseUser', fieldSelector?: string) =>
    new Informer<KubeObject>(client, kind, { namespace, fieldSelector, log });
  const databases = watch('Database', `metadata.name=${name}`);
  const roles = watch('AccessRole');
  const users = watch('DatabaseUser');
  let rebuild = () => {};
  const secrets = new SecretWatches(client, namespace, log, () => rebuild());
  await Promise.all([databases.start(), roles.start(), users.start()]);

  const readDatabase = (): Database => {
    const raw = databases.get(name, namespace);
    if (!raw) throw new DrawbridgeError('INVALID_CONFIG', `Database ${opts.database} does not exist`);
    const parsed = parseAs(Database, 'Database', raw);
    if (!parsed.success) {
      const issues = parsed.error.issues.map(formatIssue).join('; ');
      throw new DrawbridgeError('INVALID_CONFIG', `Database ${opts.database} is invalid: ${issues}`);
    }
    return parsed.data;
  };
  const snapshot = async (): Promise<StateSnapshot> => {
    const database = readDatabase();
    await secrets.follow(referencedSecrets(database));
    const policy = validPolicy(roles.list(namespace), users.list(namespace), log);
    return { database, roles: [...policy.roles], users: [...policy.users], secrets: secrets.values() };
  };

  const state = new AgentState(await snapshot());
  const tlsFiles = {
    certFile: join(opts.tlsDir, 'tls.crt'),
    keyFile: join(opts.tlsDir, 'tls.key'),
    clientCAFile: join(opts.tlsDir, 'ca.crt'),
  };
  const metrics = new AgentMetrics(true);
  metrics.setDatabase(opts.database);
  metrics.watchCertificates({ serving: tlsFiles.certFile, client_ca: tlsFiles.clientCAFile });
  const agent = new Agent({
    parts: opts.parts,
    state,
    serverTls: serverContextFromFiles(tlsFiles),
    audit: new JsonLinesAudit(opts.audit ?? '-', log, {
      ...DEFAULT_AUDIT,
      ...(opts.auditMode ? { mode: opts.auditMode } : {}),
      ...(opts.auditStallTimeout ? { stallTimeoutMs: parseDuration(opts.auditStallTimeout) } : {}),
      fd: opts.worker?.auditFd,
    }),
    log,
    metrics,
    tokenVerifier: new TokenReviewVerifier(client),
    peers: opts.peers ?? [],
    workers: opts.worker,
  });

  // Changes arrive in bursts (a GitOps sync applies many objects): coalesce them into one rebuild.
  let timer: NodeJS.Timeout | undefined;
  rebuild = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      snapshot().then(
        (next) => state.update(next),
        (err: unknown) =>
          log.error({ err: errorMessage(err) }, 'keeping the previous state: the new one is unusable'),
      );
    }, 50);
  };
  for (const inf of [databases, roles, users]) inf.onChange(() => rebuild());

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
      clearTimeout(timer);
      unwatchFile(tlsFiles.certFile);
      metricsServer?.close();
      await Promise.all([databases.stop(), roles.stop(), users.stop(), secrets.stop()]);
      await agent.stop();
      client.close();
    },
  };
}
