// The Drawbridge CA: created on the controller's first start and kept in a Secret in the controller's
// namespace, so every replica and restart signs with the same key. Its certificate is also published in
// a ConfigMap that anyone may read: clients verify agents with it (kubectl db) and agents trust client
// certificates issued from CSRs with it.
import { type KeyPairPem, createCA } from '../pki/ca.js';
import type { Logger } from '../log.js';
import type { KubeClient } from '../kube/client.js';
import { isReason } from '../kube/errors.js';
import { collectionPath, objectPath } from '../kube/resources.js';
import type { KubeObject, OwnerReference } from '../kube/types.js';
import { LABEL_MANAGED_BY, MANAGED_BY } from './names.js';

const CA_SECRET_NAME = 'drawbridge-ca';
export const CA_CONFIGMAP_NAME = 'drawbridge-ca';

type Secret = KubeObject & { data?: Record<string, string> };

const b64 = (s: string) => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, 'base64').toString('utf8') : '');

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
): Promise<KeyPairPem> {
  const path = objectPath('Secret', CA_SECRET_NAME, namespace);
  const ownerReferences = owners.length ? { ownerReferences: owners } : {};
  let ca: KeyPairPem;
  try {
    const secret = await client.get<Secret>(path);
    ca = fromSecret(secret);
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
      ca = fresh;
    } catch (createErr) {
      if (!isReason(createErr, 'AlreadyExists')) throw createErr;
      ca = fromSecret(await client.get<Secret>(path));
    }
  }
  await client.patch(objectPath('ConfigMap', CA_CONFIGMAP_NAME, namespace), 'apply', {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: {
      name: CA_CONFIGMAP_NAME,
      namespace,
      labels: { [LABEL_MANAGED_BY]: MANAGED_BY },
      ...ownerReferences,
    },
    data: { 'ca.crt': ca.certPem },
  });
  return ca;
}

function fromSecret(secret: Secret): KeyPairPem {
  const certPem = unb64(secret.data?.['tls.crt']);
  const keyPem = unb64(secret.data?.['tls.key']);
  if (!certPem || !keyPem) {
    throw new Error(
      `Secret ${secret.metadata.namespace}/${secret.metadata.name} lacks tls.crt or tls.key; delete it to let the controller create a new CA`,
    );
  }
  return { certPem, keyPem };
}
