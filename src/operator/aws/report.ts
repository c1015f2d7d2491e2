// Where AWS problems that no single Database owns are reported: Events on the controller's own Pod
// (POD_NAME / POD_NAMESPACE / POD_UID from the downward API, which the Helm chart sets), so
// `kubectl describe pod` and `kubectl events` show them next to the pod's logs. Outside a pod (a local
// run) they are logged only. Discovery repeats every few minutes: the same Event is recorded again
// only after RENOTIFY_MS, so a lasting failure stays visible (Events expire after an hour) without a
// new Event every round.
import type { Logger } from '../../log.js';
import type { EventSink, EventType } from '../events.js';
import type { KubeObject } from '../../kube/types.js';

export interface PodRef {
  name: string;
  namespace: string;
  uid?: string;
}

const RENOTIFY_MS = 30 * 60_000;

export class ControllerEvents {
  private readonly recorded = new Map<string, number>();
  private readonly pod: KubeObject | undefined;

  constructor(
    private readonly sink: EventSink,
    pod: PodRef | undefined,
    private readonly log: Logger,
    private readonly renotifyMs = RENOTIFY_MS,
  ) {
    this.pod = pod && {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod.name, namespace: pod.namespace, ...(pod.uid ? { uid: pod.uid } : {}) },
    };
  }

  warn(reason: string, message: string, now = Date.now()): void {
    this.log.warn({ reason }, message);
    this.record('Warning', reason, message, now);
  }

  normal(reason: string, message: string, now = Date.now()): void {
    this.log.info({ reason }, message);
    this.record('Normal', reason, message, now);
  }

  private record(type: EventType, reason: string, message: string, now: number): void {
    if (!this.pod) return;
    const key = `${type}|${reason}|${message}`;
    const last = this.recorded.get(key);
    if (last !== undefined && now - last < this.renotifyMs) return;
    this.recorded.set(key, now);
    this.sink.record(this.pod, type, reason, message);
  }
}

/** The controller's Pod from the downward API environment, when it runs in one. */
export function podFromEnv(env: NodeJS.ProcessEnv = process.env): PodRef | undefined {
  if (!env.POD_NAME || !env.POD_NAMESPACE) return undefined;
  return { name: env.POD_NAME, namespace: env.POD_NAMESPACE, ...(env.POD_UID ? { uid: env.POD_UID } : {}) };
}
