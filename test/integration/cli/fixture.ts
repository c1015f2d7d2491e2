// The whole `kubectl db` path with real parts: a kube-apiserver with the Helm chart installed, the
// drawbridge controller running as the chart's ServiceAccount (so the chart's RBAC is what it gets),
// the test node agent running the controller's agent Deployment as a `drawbridge agent --database`
// process, and PostgreSQL 15. The plugin runs as people run it: `kubectl db ...` found on PATH by the
// real kubectl.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { createLogger } from '../../../src/log.js';
import { type RunningController, startController } from '../../../src/operator/manager.js';
import { agentName } from '../../../src/operator/names.js';
import { type ControlPlane, startControlPlane } from '../../k8s/controlplane.js';
import { startNodeAgent } from '../../k8s/node-agent.js';
import { type PostgresServer, startPostgres } from '../../support/postgres.js';
import { REDIS_USERS, type RedisServer, startRedis } from '../../support/redis.js';

export const CONTROLLER_NS = 'drawbridge';
export const NS = 'shop';
export const DB = 'orders-pg';
export const CACHE = 'cache';
/** Another Redis Database alice may use (DB 5 of the same server): its agent must never pass for cache's. */
export const DECOY = 'cache-decoy';
const PLUGIN = path.resolve('dist/src/cli/kubectl-db.js');
const COMPLETION = path.resolve('dist/src/cli/kubectl-complete-db.js');

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface CliFixture {
  plane: ControlPlane;
  pg: PostgresServer;
  redis: RedisServer;
  /** Where the node agent runs each Database's agent (host:port on loopback). */
  agentAddress: Record<typeof DB | typeof CACHE | typeof DECOY, string>;
  /** Where a Database's agent runs now (a new address once its pods rolled), when a replica is ready. */
  agentNow(name: string): Promise<string>;
  /** What the PostgreSQL agent process wrote (its audit events go to stdout). */
  agentLogs(): Promise<string>;
  /** Drawbridge's CA (the controller's): signs the agent's certificate and every login. */
  caPem: string;
  kubeconfigs: { alice: string; mallory: string };
  home: string;
  /** `kubectl db ARGS` as a person (KUBECONFIG), to completion. */
  kubectlDb(kubeconfig: string, args: string[]): Promise<RunResult>;
  /** Any kubectl command with the plugins on PATH (`__complete db ...` runs kubectl_complete-db). */
  kubectl(kubeconfig: string, args: string[]): Promise<RunResult>;
  /** `kubectl db ARGS` left running (proxy). */
  spawnKubectlDb(kubeconfig: string, args: string[]): ChildProcess;
  stop(): Promise<void>;
}

/** orders-pg (PostgreSQL) and cache (Redis); alice may reach the first as alice, the second as admin. */
function docs(pg: PostgresServer, redis: RedisServer): object[] {
  const meta = (name: string, extra: object = {}) => ({ name, namespace: NS, ...extra });
  const role = (name: string, allow: object, maxSessionTTL = '8h') => ({
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'AccessRole',
    metadata: meta(name),
    spec: { allow, options: { maxSessionTTL } },
  });
  const secret = (name: string, stringData: Record<string, string>) => ({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(name),
    stringData,
  });
  return [
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: meta(DB, { labels: { env: 'prod', team: 'orders' } }),
      spec: {
        protocol: 'postgres',
        uri: `postgres://127.0.0.1:${pg.port}/orders`,
        tls: { mode: 'verify-full', caSecretRef: { name: 'pg-ca', key: 'ca.crt' }, serverName: 'localhost' },
        auth: { type: 'password', secretRef: { name: 'pg-passwords' } },
      },
    },
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: meta(CACHE, { labels: { env: 'prod', app: 'cache' } }),
      spec: {
        protocol: 'redis',
        uri: `rediss://${redis.host}:${redis.tlsPort}`,
        tls: { mode: 'verify-full', caSecretRef: { name: 'redis-ca', key: 'ca.crt' } },
        auth: { type: 'password', secretRef: { name: 'redis-passwords' } },
      },
    },
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: meta(DECOY, { labels: { env: 'prod', app: 'cache' } }),
      spec: {
        protocol: 'redis',
        uri: `rediss://${redis.host}:${redis.tlsPort}/5`,
        tls: { mode: 'verify-full', caSecretRef: { name: 'redis-ca', key: 'ca.crt' } },
        auth: { type: 'password', secretRef: { name: 'redis-passwords' } },
      },
    },
    secret('pg-ca', { 'ca.crt': pg.ca.certPem }),
    secret('pg-passwords', { alice: 'alice-pw' }),
    secret('redis-ca', { 'ca.crt': redis.ca.certPem }),
    // The Redis user needs COMMAND and INFO for the agent to learn the backend's command table.
    secret('redis-passwords', { admin: REDIS_USERS.admin.password }),
    role(
      'orders-dev',
      { databaseLabels: { team: 'orders' }, databaseUsers: ['alice'], databaseNames: ['orders'] },
      '1h',
    ),
    role('cache-dev', { databaseLabels: { app: 'cache' }, databaseUsers: ['admin'] }),
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'DatabaseUser',
      metadata: meta('alice'),
      spec: { subjects: [{ kind: 'User', name: 'alice' }], roles: ['orders-dev', 'cache-dev'] },
    },
  ];
}

function exec(bin: string, args: string[], env: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(bin, args, { env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

async function eventually<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function startCliFixture(): Promise<CliFixture> {
  if (!existsSync(PLUGIN)) throw new Error(`${PLUGIN} is missing: run make build first`);
  const cleanup: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    for (const fn of cleanup.reverse()) await fn().catch(() => undefined);
  };
  try {
    const home = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-cli-'));
    cleanup.push(() => rm(home, { recursive: true, force: true }));
    const pluginDir = path.join(home, 'bin');
    await mkdir(pluginDir);
    // What `npm i -g` puts on PATH: the plugin and its completion helper (kubectl runs both).
    for (const [bin, js] of [
      ['kubectl-db', PLUGIN],
      ['kubectl_complete-db', COMPLETION],
    ] as const) {
      await writeFile(path.join(pluginDir, bin), `#!/bin/sh\nexec node ${js} "$@"\n`);
      await chmod(path.join(pluginDir, bin), 0o755);
    }

    const plane = await startControlPlane();
    cleanup.push(() => plane.stop());
    await plane.kubectl(['create', 'namespace', CONTROLLER_NS]);
    await plane.kubectl(['create', 'namespace', NS]);
    const helmEnv = {
      ...process.env,
      KUBECONFIG: plane.kubeconfigPath,
      HELM_CACHE_HOME: path.join(home, 'helm'),
    };
    const installed = await exec(
      path.join(plane.binDir, 'helm'),
      ['install', 'drawbridge', 'charts/drawbridge', '-n', CONTROLLER_NS, '--set', 'users.groups={devs}'],
      helmEnv,
    );
    if (installed.code !== 0) throw new Error(`helm install failed: ${installed.stderr}`);

    const pg = await startPostgres({
      databases: ['orders'],
      roles: [{ name: 'alice', password: 'alice-pw' }],
    });
    cleanup.push(() => pg.stop());
    const redis = await startRedis();
    cleanup.push(() => redis.stop());
    const objects = docs(pg, redis);
    await plane.kubectl(['apply', '-f', '-'], { input: objects.map((o) => JSON.stringify(o)).join('\n') });

    // The controller as the chart's ServiceAccount: its RBAC is exactly what the chart grants.
    const sa = `system:serviceaccount:${CONTROLLER_NS}:drawbridge`;
    const saConfig = await plane.makeUserKubeconfig(sa, [
      'system:serviceaccounts',
      `system:serviceaccounts:${CONTROLLER_NS}`,
    ]);
    const kubeConfig = new k8s.KubeConfig();
    kubeConfig.loadFromFile(saConfig);
    const controller: RunningController = await startController({
      kubeConfig,
      namespace: CONTROLLER_NS,
      agent: { image: 'drawbridge:test', command: ['drawbridge'] },
      log: createLogger('controller', 'warn'),
      leaderElection: false,
      workers: 2,
    });
    cleanup.push(() => controller.stop());

    const admin = new k8s.KubeConfig();
    admin.loadFromFile(plane.kubeconfigPath);
    const caMap = await eventually('the controller publishes its CA', () =>
      admin
        .makeApiClient(k8s.CoreV1Api)
        .readNamespacedConfigMap({ name: 'drawbridge-ca', namespace: CONTROLLER_NS })
        .then((cm) => cm.data?.['ca.crt']),
    );
    const nodeAgent = await startNodeAgent({ kubeconfigPath: plane.kubeconfigPath });
    cleanup.push(() => nodeAgent.stop());
    const agentAddress = {
      [DB]: await nodeAgent.waitForEndpoint(NS, agentName(DB), 90_000),
      [CACHE]: await nodeAgent.waitForEndpoint(NS, agentName(CACHE), 90_000),
      [DECOY]: await nodeAgent.waitForEndpoint(NS, agentName(DECOY), 90_000),
    };

    const env = (kubeconfig: string) => ({
      ...process.env,
      KUBECONFIG: kubeconfig,
      DRAWBRIDGE_HOME: home,
      PATH: `${pluginDir}:${path.dirname(process.execPath)}:${process.env.PATH}`,
    });
    const kubectl = path.join(plane.binDir, 'kubectl');
    return {
      plane,
      pg,
      redis,
      agentAddress,
      agentNow: (name) => nodeAgent.waitForEndpoint(NS, agentName(name), 90_000),
      agentLogs: async () =>
        (await Promise.all(nodeAgent.logs(NS, agentName(DB)).map((f) => readFile(f, 'utf8')))).join(''),
      caPem: caMap,
      home,
      kubeconfigs: {
        alice: await plane.makeUserKubeconfig('alice', ['devs']),
        mallory: await plane.makeUserKubeconfig('mallory', ['devs']),
      },
      kubectlDb: (kubeconfig, args) => exec(kubectl, ['db', ...args], env(kubeconfig)),
      kubectl: (kubeconfig, args) => exec(kubectl, args, env(kubeconfig)),
      spawnKubectlDb: (kubeconfig, args) =>
        spawn(kubectl, ['db', ...args], { env: env(kubeconfig), stdio: ['ignore', 'pipe', 'pipe'] }),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
