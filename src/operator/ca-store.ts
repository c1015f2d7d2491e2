// The Drawbridge CA: created on the controller's first start and kept in a Secret in the controller's
// namespace, so every replica and restart signs with the same key. Its certificate is also published in
// a ConfigMap that anyone may read: clients verify agents with it (kubectl db) and agents trust client
// certificates issued from CSRs with it. During a rotation (ca-rotation.ts) both hold a trust bundle of
// the old and the new CA; the CaReconciler moves the Secret through the phases an operator asks for.
import { createCA } from '../pki/ca.js';
import type { Logger } from '../log.js';
import type { KubeClient } from '../kube/client.js';
import { isReason } from '../kube/errors.js';
import { collectionPath, objectPath } from '../kube/resources.js';
import type { KubeObject, OwnerReference } from '../kube/types.js';
import {
  ANNOTATION_CA_MESSAGE,
  ANNOTATION_CA_PHASE,
  ANNOTATION_CA_ROTATION,
  type CaState,
  caState,
  describe,
  nextStep,
  phaseOf,
  trustBundle,
} from './ca-rotation.js';
import type { Reconciler } from './controller.js';
import type { EventSink } from './events.js';
import { LABEL_MANAGED_BY, MANAGED_BY } from './names.js';

export const CA_SECRET_NAME = 'drawbridge-ca';
export const CA_CONFIGMAP_NAME = 'drawbridge-ca';

type Secret = KubeObject & { data?: Record<string, string> };

const b64 = (s: string) => Buffer.from(s).toString('base64');
const where = (secret: Secret) => `Secret ${secret.metadata.namespace}/${secret.metadata.name}`;
/** Named by its creation time, so that `openssl x509 -subject` tells the old CA from the new one. */
const newCA = () => createCA({ commonName: `Drawbridge CA ${new Date().toISOString().slice(0, 19)}Z` });

/**
 * Loads the CA from its Secret, creating it when absent; two replicas racing both end up with the winner's.
 * `owners` (the controller's Deployment) go on the Secret and the ConfigMap, so that uninstalling the
 * controller removes them.
 */
export async function loadOrCreateCA(
  client: KubeClient,
  namespace: string,
  log: Logger,
  owners: OwnerReference[] = [],
): Promise<CaState> {
  const path = objectPath('Secret', CA_SECRET_NAME, namespace);
  const ownerReferences = owners.length ? { ownerReferences: owners } : {};
  let state: CaState;
  try {
    const secret = await client.get<Secret>(path);
    state = caState(secret.data, where(secret));
    // A CA made before the controller had an owner to name: adopt it.
    const uids = new Set(secret.metadata.ownerReferences?.map((r) => r.uid));
    if (owners.some((o) => !uids.has(o.uid)))
      await client.patch(path, 'merge', { metadata: ownerReferences });
  } catch (err) {
    if (!isReason(err, 'NotFound')) throw err;
    const fresh = await createCA({ commonName: 'Drawbridge CA' });
    try {
      await client.create<Secret>(collectionPath('Secret', namespace), {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: {
          name: CA_SECRET_NAME,
          namespace,
          labels: { [LABEL_MANAGED_BY]: MANAGED_BY },
          ...ownerReferences,
        },
        type: 'kubernetes.io/tls',
        data: { 'tls.crt': b64(fresh.certPem), 'tls.key': b64(fresh.keyPem) },
      });
      log.info({ namespace, secretName: CA_SECRET_NAME }, 'created the Drawbridge CA Secret');
      state = { signing: fresh };
    } catch (createErr) {
      if (!isReason(createErr, 'AlreadyExists')) throw createErr;
      const secret = await client.get<Secret>(path);
      state = caState(secret.data, where(secret));
    }
  }
  await publish(client, namespace, owners, state, describe(phaseOf(state)));
  return state;
}

/** The ConfigMap everyone reads: the trust bundle, and the phase for whoever watches a rotation. */
async function publish(
  client: KubeClient,
  namespace: string,
  owners: OwnerReference[],
  state: CaState,
  message: string,
): Promise<void> {
  await client.patch(objectPath('ConfigMap', CA_CONFIGMAP_NAME, namespace), 'apply', {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: CA_CONFIGMAP_NAME,
      namespace,
      labels: { [LABEL_MANAGED_BY]: MANAGED_BY },
      annotations: {
        [ANNOTATION_CA_PHASE]: phaseOf(state),
        ...(message ? { [ANNOTATION_CA_MESSAGE]: message } : {}),
      },
      ...(owners.length ? { ownerReferences: owners } : {}),
    },
    data: { 'ca.crt': trustBundle(state) },
  });
}

export interface CaReconcilerDeps {
  client: KubeClient;
  namespace: string;
  owners: OwnerReference[];
  /** The CA Secret (an informer on it alone). */
  secret: () => Secret | undefined;
  events: EventSink;
  log: Logger;
  /** Called with every state read or written; the caller re-issues what depends on it. */
  changed: (state: CaState) => void;
}

/**
 * Follows the rotation annotation on the CA Secret one phase at a time. Every step is one write of the
 * Secret, guarded by its resourceVersion: a controller that crashes before it finds the step undone,
 * after it finds it done, and two replicas can never both apply one. The private keys go to the Secret
 * only; messages, events and logs name phases and subjects.
 */
export class CaReconciler implements Reconciler {
  readonly name = 'ca';

  constructor(private readonly deps: CaReconcilerDeps) {}

  async reconcile(): Promise<void> {
    const { client, namespace, owners, events, log } = this.deps;
    const secret = this.deps.secret();
    if (!secret) {
      // Deleted: what a restart would do. Every login and agent certificate of the old CA stops working.
      this.deps.changed(await loadOrCreateCA(client, namespace, log, owners));
      return;
    }
    let state = caState(secret.data, where(secret));
    const step = nextStep(state, secret.metadata.annotations?.[ANNOTATION_CA_ROTATION]);
    let message = describe(phaseOf(state));
    if (step.kind === 'refuse') {
      message = step.message;
      events.record(secret, 'Warning', 'CARotationRefused', message);
    } else if (step.kind === 'write') {
      const data = { ...step.data };
      if (step.newCA) {
        const next = await newCA();
        Object.assign(data, { 'next.crt': b64(next.certPem), 'next.key': b64(next.keyPem) });
      }
      const written = await client.patch<Secret>(objectPath('Secret', CA_SECRET_NAME, namespace), 'merge', {
        metadata: { resourceVersion: secret.metadata.resourceVersion },
        data,
      });
      state = caState(written.data, where(written));
      message = step.message;
      events.record(written, 'Normal', `CARotation${step.to[0]!.toUpperCase()}${step.to.slice(1)}`, message);
      log.info({ phase: step.to }, `CA rotation: ${message}`);
    }
    // Before publishing, which may fail: once update is written the old key is deleted and must sign
    // nothing more, retry or not.
    this.deps.changed(state);
    await publish(client, namespace, owners, state, message);
  }
}
