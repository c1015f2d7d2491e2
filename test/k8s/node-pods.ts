/**
 * The node agent's Pod objects: what a kubelet writes for a pod, for the few fields the operator reads
 * (labels, conditions, container statuses with restartCount, state and lastState). The container's
 * last termination message is read as the kubelet does: the file at terminationMessagePath if the
 * process wrote one, else with FallbackToLogsOnError and a failed exit the log's tail (80 lines, 2 KiB).
 */
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import type { KubeClient } from '../../src/kube/client.js';
import { isReason } from '../../src/kube/errors.js';
import { collectionPath, objectPath } from '../../src/kube/resources.js';
import type { KubeObject } from '../../src/kube/types.js';

/** Where the node agent says its pods run (no such Node exists: nothing else looks). */
export const NODE_NAME = 'node-agent';
const MESSAGE_BYTES = 4096;
const TAIL_BYTES = 2048;
const TAIL_LINES = 80;

export interface Terminated {
  exitCode: number;
  reason: 'Completed' | 'Error';
  message?: string;
  startedAt: string;
  finishedAt: string;
}

/** One container run as a process: what its status says. */
export interface ContainerRun {
  restartCount: number;
  startedAt: string;
  /** Set while the process is down and the restart waits, as in CrashLoopBackOff. */
  backoffMs?: number;
  last?: Terminated;
  ready: boolean;
}

export function podManifest(d: KubeObject, hash: string, name: string): KubeObject {
  const template = (d.spec as { template: { metadata?: KubeObject['metadata']; spec: object } }).template;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: d.metadata.namespace,
      labels: { ...template.metadata?.labels, 'pod-template-hash': hash },
      annotations: template.metadata?.annotations,
      ownerReferences: [
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          name: d.metadata.name,
          uid: d.metadata.uid!,
          controller: true,
        },
      ],
    },
    spec: { ...template.spec, nodeName: NODE_NAME },
  };
}

export async function createPod(client: KubeClient, pod: KubeObject): Promise<void> {
  await client.create(collectionPath('Pod', pod.metadata.namespace), pod);
}

export async function deletePod(client: KubeClient, name: string, namespace: string): Promise<void> {
  try {
    await client.request('DELETE', objectPath('Pod', name, namespace), { body: { gracePeriodSeconds: 0 } });
  } catch (err) {
    if (!isReason(err, 'NotFound')) throw err;
  }
}

/** The pod's status as a kubelet would write it for one container. */
export function podStatus(pod: string, container: string, image: string, run: ContainerRun): object {
  const waiting = run.backoffMs !== undefined;
  const ready = run.ready ? 'True' : 'False';
  const unready = run.ready
    ? {}
    : { reason: 'ContainersNotReady', message: `containers with unready status: [${container}]` };
  return {
    phase: 'Running',
    conditions: [
      { type: 'PodScheduled', status: 'True' },
      { type: 'Initialized', status: 'True' },
      { type: 'ContainersReady', status: ready, ...unready },
      { type: 'Ready', status: ready, ...unready },
    ],
    containerStatuses: [
      {
        name: container,
        image,
        imageID: '',
        ready: run.ready,
        started: !waiting,
        restartCount: run.restartCount,
        state: waiting
          ? {
              waiting: {
                reason: 'CrashLoopBackOff',
                message: `back-off ${Math.round(run.backoffMs! / 1000)}s restarting failed container=${container} pod=${pod}`,
              },
            }
          : { running: { startedAt: run.startedAt } },
        lastState: run.last ? { terminated: run.last } : {},
      },
    ],
  };
}

export async function writePodStatus(client: KubeClient, pod: KubeObject, status: object): Promise<void> {
  await client.patch(objectPath('Pod', pod.metadata.name, pod.metadata.namespace, 'status'), 'merge', {
    status,
  });
}

/** The kubelet's termination message: the file's text, else (policy permitting) the log's tail. */
export function terminationMessage(
  file: string,
  logPath: string,
  exitCode: number,
  fallbackToLogs: boolean,
): string | undefined {
  const written = readFileSync(file).subarray(0, MESSAGE_BYTES).toString('utf8');
  if (written) return written;
  if (!fallbackToLogs || exitCode === 0) return undefined;
  const size = statSync(logPath).size;
  const buf = Buffer.alloc(Math.min(size, TAIL_BYTES));
  const fd = openSync(logPath, 'r');
  readSync(fd, buf, 0, buf.length, size - buf.length);
  closeSync(fd);
  return buf.toString('utf8').split('\n').slice(-TAIL_LINES).join('\n') || undefined;
}

export function terminated(
  code: number | null,
  signal: NodeJS.Signals | null,
  startedAt: string,
  message?: string,
): Terminated {
  // A process killed by a signal exits 128+n in a container.
  const exitCode = code ?? 128 + (signal ? constants.signals[signal] : 0);
  return {
    exitCode,
    reason: exitCode === 0 ? 'Completed' : 'Error',
    ...(message ? { message } : {}),
    startedAt,
    finishedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}
