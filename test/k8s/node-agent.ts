/**
 * A test stand-in for the kubelet. There are no nodes here, so this watches the Drawbridge agent
 * Deployments and runs each replica as a local `drawbridge agent` process, the way a pod would run:
 * the container's args and env, the mounted Secret volumes written to a temporary directory, and the
 * pod's ServiceAccount identity (a TokenRequest token in a kubeconfig). Listen addresses are
 * rewritten to free loopback ports and published in an annotation on the Deployment; readiness comes
 * from the agent's /healthz and is reported in the Deployment's status. Deleting the Deployment stops
 * its processes. It lives in test/, never in the product.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { stringify } from 'yaml';
import { createLogger } from '../../src/log.js';
import { Controller, type Reconciler } from '../../src/operator/controller.js';
import { KubeClient } from '../../src/kube/client.js';
import { Informer } from '../../src/kube/informer.js';
import { objectPath } from '../../src/kube/resources.js';
import { type KubeObject, objectKey, splitKey } from '../../src/kube/types.js';
import { AGENT_SELECTOR } from '../../src/operator/names.js';
import { freePort } from '../support/ports.js';

/** Where the node agent publishes the replicas' client addresses (comma-separated host:port). */
export const ENDPOINTS_ANNOTATION = 'node-agent.test.drawbridge.dev/endpoints';

/** The repository root, from source (test/k8s) or compiled (dist/test/k8s). */
function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) && dir !== path.dirname(dir)) dir = path.dirname(dir);
  return dir;
}

export interface NodeAgentOptions {
  /** An admin kubeconfig: the node agent reads Secrets and requests tokens like a kubelet. */
  kubeconfigPath: string;
  /** The compiled CLI that stands in for the image's `drawbridge` entrypoint. */
  drawbridgeBin?: string;
}

export interface NodeAgent {
  /** Client addresses of a Deployment's running replicas (empty until they run). */
  endpoints(namespace: string, deployment: string): string[];
  /** Waits until a replica of the Deployment is ready and returns its client address. */
  waitForEndpoint(namespace: string, deployment: string, timeoutMs?: number): Promise<string>;
  /** Log file of a replica, for test failure messages. */
  logs(namespace: string, deployment: string): string[];
  stop(): Promise<void>;
}

interface Container {
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string }[];
  volumeMounts?: { name: string; mountPath: string }[];
}
interface PodSpec {
  serviceAccountName?: string;
  containers: Container[];
  volumes?: { name: string; secret?: { secretName: string } }[];
}
type Deployment = KubeObject & {
  spec: { replicas?: number; template: { metadata?: KubeObject['metadata']; spec: PodSpec } };
};

interface Replica {
  child: ChildProcess;
  endpoint: string;
  healthz: string;
  logPath: string;
  ready: boolean;
  exited: boolean;
}

interface Pod {
  templateHash: string;
  dir: string;
  replicas: Replica[];
}

export async function startNodeAgent(opts: NodeAgentOptions): Promise<NodeAgent> {
  const kc = new KubeConfig();
  kc.loadFromFile(opts.kubeconfigPath);
  const client = await KubeClient.fromKubeConfig(kc);
  const log = createLogger('node-agent', process.env.DRAWBRIDGE_LOG_LEVEL ?? 'warn');
  const bin = opts.drawbridgeBin ?? path.join(repoRoot(), 'dist/src/cli/drawbridge.js');
  const root = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-node-'));
  const pods = new Map<string, Pod>();
  const deployments = new Informer<Deployment>(client, 'Deployment', { labelSelector: AGENT_SELECTOR, log });

  const reconciler: Reconciler = {
    name: 'node-agent',
    async reconcile(key) {
      const { namespace = '', name } = splitKey(key);
      const d = deployments.get(name, namespace);
      const pod = pods.get(key);
      const hash = d ? templateHash(d) : '';
      if (pod && pod.templateHash !== hash) {
        pods.delete(key);
        await stopPod(pod);
      }
      if (!d) return;
      if (!pods.has(key)) pods.set(key, await startPod(d, hash));
      const running = pods.get(key)!;
      await scale(d, running);
      await reportStatus(d, running);
      // Readiness and crashes are observed by polling, as a kubelet's probes do.
      return { requeueAfterMs: running.replicas.every((r) => r.ready) ? 2000 : 300 };
    },
  };
  const controller = new Controller(reconciler, log, 2);
  deployments.onChange((d) => controller.enqueue(objectKey(d)));

  async function startPod(d: Deployment, hash: string): Promise<Pod> {
    const dir = path.join(root, `${d.metadata.namespace}_${d.metadata.name}_${hash}`);
    await mkdir(dir, { recursive: true });
    return { templateHash: hash, dir, replicas: [] };
  }

  async function scale(d: Deployment, pod: Pod): Promise<void> {
    for (const r of pod.replicas.filter((x) => x.exited)) {
      pod.replicas.splice(pod.replicas.indexOf(r), 1); // restartPolicy: Always
    }
    const wanted = d.spec.replicas ?? 1;
    while (pod.replicas.length > wanted) await stopReplica(pod.replicas.pop()!);
    while (pod.replicas.length < wanted) pod.replicas.push(await startReplica(d, pod));
    await Promise.all(pod.replicas.map(async (r) => (r.ready = !r.exited && (await healthy(r.healthz)))));
  }

  async function startReplica(d: Deployment, pod: Pod): Promise<Replica> {
    const ns = d.metadata.namespace!;
    const spec = d.spec.template.spec;
    const container = spec.containers[0]!;
    const n = pod.replicas.length;
    const rdir = path.join(pod.dir, `replica-${n}-${Date.now()}`);
    // Mounted Secret volumes become directories; every arg naming a mount path is rewritten to them.
    const mounts = new Map<string, string>();
    for (const m of container.volumeMounts ?? []) {
      const vol = spec.volumes?.find((v) => v.name === m.name);
      if (!vol?.secret) continue;
      const target = path.join(rdir, 'volumes', m.name);
      await mkdir(target, { recursive: true });
      const secret = await client.get<KubeObject>(objectPath('Secret', vol.secret.secretName, ns));
      for (const [k, v] of Object.entries((secret.data ?? {}) as Record<string, string>)) {
        await writeFile(path.join(target, k), Buffer.from(v, 'base64'), { mode: 0o600 });
      }
      mounts.set(m.mountPath, target);
    }
    const port = await freePort();
    const metricsPort = await freePort();
    const args = (container.args ?? []).map((a, i, all) => {
      if (all[i - 1] === '--listen') return `127.0.0.1:${port}`;
      if (all[i - 1] === '--metrics') return `127.0.0.1:${metricsPort}`;
      for (const [from, to] of mounts)
        if (a === from || a.startsWith(`${from}/`)) return to + a.slice(from.length);
      return a;
    });
    const kubeconfig = path.join(rdir, 'kubeconfig');
    await writeFile(kubeconfig, await serviceAccountKubeconfig(ns, spec.serviceAccountName ?? 'default'), {
      mode: 0o600,
    });
    const command = container.command ?? ['drawbridge'];
    const [exe, ...exeArgs] =
      command[0] === 'drawbridge' ? [process.execPath, bin, ...command.slice(1)] : command;
    const env = Object.fromEntries((container.env ?? []).map((e) => [e.name, e.value ?? '']));
    const logPath = path.join(rdir, 'agent.log');
    const fd = openSync(logPath, 'a');
    const child = spawn(exe!, [...exeArgs, ...args], {
      env: { PATH: process.env.PATH, ...env, KUBECONFIG: kubeconfig },
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    const replica: Replica = {
      child,
      endpoint: `127.0.0.1:${port}`,
      healthz: `http://127.0.0.1:${metricsPort}/healthz`,
      logPath,
      ready: false,
      exited: false,
    };
    child.on('exit', () => {
      replica.exited = true;
      replica.ready = false;
      controller.enqueue(objectKey(d));
    });
    return replica;
  }

  /** What a kubelet gives a pod: a token for its ServiceAccount, here inside a kubeconfig. */
  async function serviceAccountKubeconfig(namespace: string, sa: string): Promise<string> {
    const tr = await client.request<{ status: { token: string } }>(
      'POST',
      objectPath('ServiceAccount', sa, namespace, 'token'),
      {
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenRequest',
          spec: { expirationSeconds: 3600 },
        },
      },
    );
    const cluster = kc.getCurrentCluster()!;
    return stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'c', cluster: { server: cluster.server, 'certificate-authority-data': cluster.caData } },
      ],
      users: [{ name: sa, user: { token: tr.status.token } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: sa, namespace } }],
      'current-context': 'c',
    });
  }

  async function reportStatus(d: Deployment, pod: Pod): Promise<void> {
    const ready = pod.replicas.filter((r) => r.ready);
    const endpoints = ready.map((r) => r.endpoint).join(',');
    const status = d.status as { readyReplicas?: number; observedGeneration?: number } | undefined;
    if (status?.readyReplicas !== ready.length || status?.observedGeneration !== d.metadata.generation) {
      await client.patch(objectPath('Deployment', d.metadata.name, d.metadata.namespace, 'status'), 'merge', {
        status: {
          observedGeneration: d.metadata.generation,
          replicas: pod.replicas.length,
          updatedReplicas: pod.replicas.length,
          readyReplicas: ready.length,
          availableReplicas: ready.length,
        },
      });
    }
    if ((d.metadata.annotations?.[ENDPOINTS_ANNOTATION] ?? '') !== endpoints) {
      await client.patch(objectPath('Deployment', d.metadata.name, d.metadata.namespace), 'merge', {
        metadata: { annotations: { [ENDPOINTS_ANNOTATION]: endpoints || null } },
      });
    }
  }

  async function stopReplica(r: Replica): Promise<void> {
    if (r.exited) return;
    const gone = new Promise<void>((resolve) => r.child.once('exit', () => resolve()));
    r.child.kill('SIGTERM');
    const kill = setTimeout(() => r.child.kill('SIGKILL'), 5000);
    await gone;
    clearTimeout(kill);
  }

  async function stopPod(pod: Pod): Promise<void> {
    await Promise.all(pod.replicas.map(stopReplica));
    await rm(pod.dir, { recursive: true, force: true });
  }

  await deployments.start();
  controller.start();

  const agent: NodeAgent = {
    endpoints(namespace, deployment) {
      return (pods.get(`${namespace}/${deployment}`)?.replicas ?? [])
        .filter((r) => r.ready)
        .map((r) => r.endpoint);
    },
    async waitForEndpoint(namespace, deployment, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const [endpoint] = agent.endpoints(namespace, deployment);
        if (endpoint) return endpoint;
        if (Date.now() > deadline) {
          throw new Error(
            `no ready replica of ${namespace}/${deployment} after ${timeoutMs} ms; logs: ${agent.logs(namespace, deployment).join(', ')}`,
          );
        }
        await new Promise((r) => setTimeout(r, 200));
      }
    },
    logs(namespace, deployment) {
      return (pods.get(`${namespace}/${deployment}`)?.replicas ?? []).map((r) => r.logPath);
    },
    async stop() {
      await controller.stop();
      await deployments.stop();
      await Promise.all([...pods.values()].map(stopPod));
      pods.clear();
      await rm(root, { recursive: true, force: true });
      client.close();
    },
  };
  return agent;
}

function templateHash(d: Deployment): string {
  return createHash('sha256').update(JSON.stringify(d.spec.template)).digest('hex').slice(0, 10);
}

function healthy(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get(url, { timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
  });
}
