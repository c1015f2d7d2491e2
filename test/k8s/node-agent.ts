/**
 * A test stand-in for the kubelet. There are no nodes here, so this watches the Drawbridge agent
 * Deployments and runs each replica as a local `drawbridge agent` process, the way a pod would run:
 * the container's args and env, the mounted Secret volumes written to a temporary directory, and the
 * pod's ServiceAccount identity (a TokenRequest token in a kubeconfig). Listen addresses are
 * rewritten to free loopback ports and published in an annotation on the Deployment; readiness comes
 * from the agent's /healthz and is reported in the Deployment's status. Each replica is also a Pod
 * object whose status says what a kubelet's would (node-pods.ts): a process that exits is restarted in
 * the same pod after a doubling back-off, shown as CrashLoopBackOff with its restartCount and
 * lastState.terminated (exit code, termination message). Deleting the Deployment stops its processes
 * and deletes its pods. It lives in test/, never in the product.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from 'node:fs';
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
import { terminate } from '../support/terminate.js';
import {
  type ContainerRun,
  createPod,
  deletePod,
  podManifest,
  podStatus,
  terminated,
  terminationMessage,
  writePodStatus,
} from './node-pods.js';

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
  /** First pause before a crashed process is started again, doubling to 16x (the kubelet's: 10 s to 5 min). */
  restartBackoffMs?: number;
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
  name: string;
  image?: string;
  terminationMessagePath?: string;
  terminationMessagePolicy?: string;
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
  /** Its Pod object, once the API server took it. */
  pod?: KubeObject;
  container: Container;
  /** Its command line; the ports come from start(), fresh for every run of the process. */
  launch: { exe: string; args: (port: number, metricsPort: number) => string[]; env: NodeJS.ProcessEnv };
  child?: ChildProcess;
  endpoint: string;
  healthz: string;
  logPath: string;
  /** What the container's terminationMessagePath is mapped to. */
  terminationLog: string;
  run: ContainerRun;
  exited: boolean;
  /** Stopped on purpose (scale-down, roll-out): no restart. */
  stopping: boolean;
  restartAt?: number;
  backoffMs: number;
  /** The pod status last written, to write only changes. */
  reported?: string;
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
  const backoffBaseMs = opts.restartBackoffMs ?? 1000;
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
      await scale(d, running, hash);
      await reportStatus(d, running);
      // Readiness and crashes are observed by polling, as a kubelet's probes do.
      return { requeueAfterMs: running.replicas.every((r) => r.run.ready) ? 2000 : 300 };
    },
  };
  const controller = new Controller(reconciler, log, 2);
  deployments.onChange((d) => controller.enqueue(objectKey(d)));

  async function startPod(d: Deployment, hash: string): Promise<Pod> {
    const dir = path.join(root, `${d.metadata.namespace}_${d.metadata.name}_${hash}`);
    await mkdir(dir, { recursive: true });
    return { templateHash: hash, dir, replicas: [] };
  }

  async function scale(d: Deployment, pod: Pod, hash: string): Promise<void> {
    // restartPolicy: Always, in the same pod, once its back-off is over.
    for (const r of pod.replicas) {
      if (r.exited && !r.stopping && r.restartAt !== undefined && Date.now() >= r.restartAt)
        await start(r, d);
    }
    const wanted = d.spec.replicas ?? 1;
    while (pod.replicas.length > wanted) await stopReplica(pod.replicas.pop()!);
    while (pod.replicas.length < wanted) pod.replicas.push(await startReplica(d, pod, hash));
    await Promise.all(pod.replicas.map(async (r) => (r.run.ready = !r.exited && (await healthy(r.healthz)))));
  }

  async function startReplica(d: Deployment, pod: Pod, hash: string): Promise<Replica> {
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
    // The kubelet mounts a file at terminationMessagePath; args naming it are rewritten like mounts.
    const terminationLog = path.join(rdir, 'termination-log');
    mounts.set(container.terminationMessagePath ?? '/dev/termination-log', terminationLog);
    const args = (port: number, metricsPort: number) =>
      (container.args ?? []).map((a, i, all) => {
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
    const replica: Replica = {
      container,
      launch: {
        exe: exe!,
        args: (port, metricsPort) => [...exeArgs, ...args(port, metricsPort)],
        env: { PATH: process.env.PATH, ...env, KUBECONFIG: kubeconfig },
      },
      endpoint: '',
      healthz: '',
      logPath: path.join(rdir, 'agent.log'),
      terminationLog,
      run: { restartCount: 0, startedAt: '', ready: false },
      exited: true,
      stopping: false,
      backoffMs: 0,
    };
    const manifest = podManifest(d, hash, `${d.metadata.name}-${hash}-${randomBytes(3).toString('hex')}`);
    try {
      await createPod(client, manifest);
      replica.pod = manifest;
    } catch (err) {
      // The process runs anyway; only the operator's view of the pod is missing.
      log.warn({ pod: manifest.metadata.name, err: String(err) }, 'could not create the Pod object');
    }
    await start(replica, d);
    return replica;
  }

  /**
   * Starts (or restarts) the replica's process, with a fresh termination-log file as a new container
   * gets. A pod has its own IP, so its ports never clash; here every replica shares loopback, and a
   * port picked free can be taken before the agent binds it (a test server's, a connection's local
   * port). So each run gets fresh ports: a restart after EADDRINUSE is not doomed to repeat it.
   */
  async function start(r: Replica, d: Deployment): Promise<void> {
    const [port, metricsPort] = [await freePort(), await freePort()];
    r.endpoint = `127.0.0.1:${port}`;
    r.healthz = `http://127.0.0.1:${metricsPort}/healthz`;
    writeFileSync(r.terminationLog, '');
    const fd = openSync(r.logPath, 'a');
    const child = spawn(r.launch.exe, r.launch.args(port, metricsPort), {
      env: r.launch.env,
      stdio: ['ignore', fd, fd],
    });
    closeSync(fd);
    const startedAt = Date.now();
    Object.assign(r, { child, exited: false, restartAt: undefined });
    r.run = {
      ...r.run,
      startedAt: new Date(startedAt).toISOString().replace(/\.\d+Z$/, 'Z'),
      backoffMs: undefined,
    };
    child.on('exit', (code, signal) => {
      r.exited = true;
      r.run.ready = false;
      if (r.stopping) return;
      const fallback = r.container.terminationMessagePolicy === 'FallbackToLogsOnError';
      const message = terminationMessage(r.terminationLog, r.logPath, code ?? 1, fallback);
      // The kubelet's back-off: doubling, back to the start after a run of 10 minutes.
      const stable = Date.now() - startedAt > 600_000;
      r.backoffMs = stable || !r.backoffMs ? backoffBaseMs : Math.min(r.backoffMs * 2, backoffBaseMs * 16);
      r.restartAt = Date.now() + r.backoffMs;
      r.run = {
        ...r.run,
        restartCount: r.run.restartCount + 1,
        last: terminated(code, signal, r.run.startedAt, message),
        backoffMs: r.backoffMs,
      };
      controller.enqueue(objectKey(d));
    });
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
    for (const r of pod.replicas) {
      if (!r.pod) continue;
      const status = podStatus(r.pod.metadata.name, r.container.name, r.container.image ?? '', r.run);
      const json = JSON.stringify(status);
      if (json === r.reported) continue;
      await writePodStatus(client, r.pod, status);
      r.reported = json;
    }
    const ready = pod.replicas.filter((r) => r.run.ready);
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
    r.stopping = true;
    if (r.child) await terminate({ child: r.child, exited: r.exited }, 5000);
    if (r.pod) await deletePod(client, r.pod.metadata.name, r.pod.metadata.namespace!).catch(() => undefined);
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
        .filter((r) => r.run.ready)
        .map((r) => r.endpoint);
    },
    async waitForEndpoint(namespace, deployment, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const [endpoint] = agent.endpoints(namespace, deployment);
        if (endpoint) return endpoint;
        if (Date.now() > deadline) {
          // CI keeps only what the test printed: the log file is gone with the machine, so its tail goes here.
          const replicas = pods.get(`${namespace}/${deployment}`)?.replicas ?? [];
          const tails = replicas.map(
            (r, i) =>
              `replica ${i} (${r.exited ? 'exited' : 'running'}, ${r.run.restartCount} restarts, ${r.logPath}):\n${logTail(r.logPath)}`,
          );
          throw new Error(
            `no ready replica of ${namespace}/${deployment} after ${timeoutMs} ms; ${tails.join('\n') || 'no replica started (is the Deployment there?)'}`,
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

/** The last lines of a replica's log (what `kubectl logs --tail` would show). */
function logTail(file: string, lines = 30): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch (err) {
    return `(no log: ${String(err)})`;
  }
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
