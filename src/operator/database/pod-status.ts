// Why the agent's pods are not ready, read from what the scheduler and the kubelet wrote in their status:
// the reason and message AgentReady carries, so `kubectl get drawdb` says what `kubectl describe pod`
// and `kubectl logs --previous` would. The agent writes its fatal start-up error to its termination log
// (and the container falls back to its log's tail), so lastState.terminated.message says why it exited.
import { REASON } from '../../api/database-status.js';
import type { KubeObject } from '../../kube/types.js';

interface Terminated {
  exitCode?: number;
  signal?: number;
  reason?: string;
  message?: string;
  finishedAt?: string;
}
interface ContainerState {
  waiting?: { reason?: string; message?: string };
  terminated?: Terminated;
}
interface ContainerStatus {
  name: string;
  ready?: boolean;
  restartCount?: number;
  state?: ContainerState;
  lastState?: ContainerState;
}
interface PodStatus {
  phase?: string;
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
  initContainerStatuses?: ContainerStatus[];
  containerStatuses?: ContainerStatus[];
}

type PodReason =
  | typeof REASON.AgentImagePullFailed
  | typeof REASON.AgentOOMKilled
  | typeof REASON.AgentCrashLooping
  | typeof REASON.AgentUnschedulable
  | typeof REASON.AgentPodsNotReady;

export interface PodProblem {
  reason: PodReason;
  message: string;
}

/** When pods differ, the one reported: the most specific first (an image never runs at all). */
const RANK: PodReason[] = [
  REASON.AgentImagePullFailed,
  REASON.AgentOOMKilled,
  REASON.AgentCrashLooping,
  REASON.AgentUnschedulable,
  REASON.AgentPodsNotReady,
];
const IMAGE_PULL = new Set(['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName', 'ErrImageNeverPull']);
/** Waiting reasons of a container on its way up: nothing to report. */
const STARTING = new Set(['ContainerCreating', 'PodInitializing']);
/** Of a termination message: enough for the error and its fix; the rest is in `kubectl logs --previous`. */
const MESSAGE_CHARS = 600;

/** The most telling problem among the agent's pods that are not ready; undefined when none says more. */
export function podProblem(pods: readonly KubeObject[]): PodProblem | undefined {
  let found: PodProblem | undefined;
  const sorted = [...pods].sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const pod of sorted) {
    // Leaving, or done for good (an evicted pod stays Failed until collected; its replacement tells).
    const phase = (pod.status as PodStatus | undefined)?.phase;
    if (pod.metadata.deletionTimestamp || phase === 'Failed' || phase === 'Succeeded') continue;
    found = moreTelling(problemOf(pod), found);
  }
  return found;
}

function moreTelling(a: PodProblem | undefined, b: PodProblem | undefined): PodProblem | undefined {
  return a && (!b || RANK.indexOf(a.reason) < RANK.indexOf(b.reason)) ? a : b;
}

function problemOf(pod: KubeObject): PodProblem | undefined {
  const name = `pod ${pod.metadata.name}`;
  const status = (pod.status ?? {}) as PodStatus;
  const scheduled = status.conditions?.find((c) => c.type === 'PodScheduled');
  if (scheduled?.status === 'False') {
    return {
      reason: REASON.AgentUnschedulable,
      message: `${name} cannot be scheduled: ${scheduled.message ?? scheduled.reason ?? 'no node fits'}; check spec.agent resources, nodeSelector, tolerations and affinity`,
    };
  }
  let found: PodProblem | undefined;
  for (const c of [...(status.initContainerStatuses ?? []), ...(status.containerStatuses ?? [])]) {
    if (!c.ready) found = moreTelling(containerProblem(name, c), found);
  }
  return found;
}

function containerProblem(pod: string, c: ContainerStatus): PodProblem | undefined {
  const where = `${pod} container ${c.name}`;
  const waiting = c.state?.waiting;
  if (waiting?.reason && IMAGE_PULL.has(waiting.reason)) {
    return {
      reason: REASON.AgentImagePullFailed,
      message: `${where}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}; check the agent image (Helm agents.image) and spec.agent.imagePullSecrets`,
    };
  }
  const restarts = `restarted ${c.restartCount ?? 0} time${c.restartCount === 1 ? '' : 's'}`;
  const last = c.state?.terminated ?? c.lastState?.terminated;
  if (last?.reason === 'OOMKilled') {
    return {
      reason: REASON.AgentOOMKilled,
      message: `${where} was killed for going over its memory limit (OOMKilled), ${restarts}; raise spec.agent.resources.limits.memory (each agent worker needs ~100 MiB) or lower spec.agent.workers`,
    };
  }
  const crashLoop = waiting?.reason === 'CrashLoopBackOff';
  if (crashLoop || (last && last.exitCode !== 0)) {
    const exit = last
      ? `; last exit ${last.signal ? `by signal ${last.signal}` : `code ${last.exitCode ?? '?'}`}${last.finishedAt ? ` at ${last.finishedAt}` : ''}`
      : '';
    const why = last?.message ? `: ${terminationMessage(last.message)}` : '';
    return {
      reason: REASON.AgentCrashLooping,
      message: `${where} ${crashLoop ? 'is crash-looping' : 'exited'}, ${restarts}${exit}${why}`,
    };
  }
  if (waiting?.reason && !STARTING.has(waiting.reason)) {
    return {
      reason: REASON.AgentPodsNotReady,
      message: `${where}: ${waiting.reason}${waiting.message ? `: ${waiting.message}` : ''}`,
    };
  }
  return undefined;
}

/**
 * One line from a termination message: the agent's own (an error and its fix) or its log's tail (JSON
 * lines, of which the `msg`). The agent never logs a secret; a key or token that some crash printed
 * anyway is cut out before the message goes where anyone who reads the Database can see it. The tail
 * holds audit lines too (they share stdout): people's statements and commands, which are not for
 * whoever reads the Database. Only log lines (a `msg`) and plain text (a crash's stack) are kept.
 */
export function terminationMessage(text: string): string {
  const lines = text
    .replace(/-----BEGIN [A-Z0-9 ]+-----[\s\S]*?(-----END [A-Z0-9 ]+-----|$)/g, '[PEM block removed]')
    .replace(/\beyJ[\w-]{6,}\.[\w-]{6,}\.[\w-]*/g, '[token removed]')
    .split('\n')
    .map((line) => logLine(line.trim()))
    .filter(Boolean);
  const one = lines.join('; ');
  return one.length > MESSAGE_CHARS ? `…${one.slice(one.length - MESSAGE_CHARS + 1)}` : one;
}

function logLine(line: string): string {
  // The kubelet's tail may start mid-line: the end of a JSON line (an audit event's, maybe) is dropped.
  if (!line.startsWith('{')) return line.endsWith('}') ? '' : line;
  try {
    const entry = JSON.parse(line) as { msg?: unknown; err?: unknown; reason?: unknown };
    if (typeof entry.msg !== 'string') return ''; // an audit event
    const detail = [entry.reason, entry.err].find((d) => typeof d === 'string');
    return detail ? `${entry.msg} (${detail as string})` : entry.msg;
  } catch {
    return '';
  }
}
