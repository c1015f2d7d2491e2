// Kubernetes Events, so `kubectl describe database X` tells the story. Recording is fire-and-forget:
// a failed Event must never fail a reconcile, so errors are logged at debug level only.
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log.js';
import type { KubeClient } from '../kube/client.js';
import { collectionPath } from '../kube/resources.js';
import { type KubeObject, metaTime } from '../kube/types.js';

export type EventType = 'Normal' | 'Warning';

export interface EventSink {
  record(obj: KubeObject, type: EventType, reason: string, message: string): void;
}

export class EventRecorder implements EventSink {
  constructor(
    private readonly client: KubeClient,
    private readonly component: string,
    private readonly log: Logger,
    /** Where events about cluster-scoped objects (CSRs) go. */
    private readonly defaultNamespace = 'default',
  ) {}

  record(obj: KubeObject, type: EventType, reason: string, message: string): void {
    const namespace = obj.metadata.namespace ?? this.defaultNamespace;
    const now = new Date();
    const event = {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${obj.metadata.name}.${randomBytes(8).toString('hex')}`, namespace },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: obj.metadata.name,
        namespace: obj.metadata.namespace,
        uid: obj.metadata.uid,
        resourceVersion: obj.metadata.resourceVersion,
      },
      type,
      reason,
      message: message.slice(0, 1024),
      source: { component: this.component },
      firstTimestamp: metaTime(now),
      lastTimestamp: metaTime(now),
      count: 1,
    };
    this.client
      .create(collectionPath('Event', namespace), event)
      .catch((err: unknown) => this.log.debug({ err: String(err), reason }, 'could not record event'));
  }
}
