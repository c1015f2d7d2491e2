// The CA that signs agent serving certificates, so clients verify the agent (sslmode=verify-full,
// redis-cli --cacert). The controller publishes it as the ConfigMap drawbridge-ca (key ca.crt); it holds
// only the public certificate, so anyone allowed to log in may read it.
import * as k8s from '@kubernetes/client-node';
import { DrawbridgeError } from '../../errors.js';
import { isNotFound, kubeError } from './kube.js';

export const CA_CONFIGMAP = 'drawbridge-ca';
export const CA_KEY = 'ca.crt';

/** Looks in the Database's namespace first, then in the controller's. */
export async function fetchAgentCA(kc: k8s.KubeConfig, namespaces: readonly string[]): Promise<string> {
  const core = kc.makeApiClient(k8s.CoreV1Api);
  for (const namespace of [...new Set(namespaces)]) {
    try {
      const cm = await core.readNamespacedConfigMap({ name: CA_CONFIGMAP, namespace });
      const pem = cm.data?.[CA_KEY];
      if (pem?.includes('BEGIN CERTIFICATE')) return pem;
    } catch (err) {
      if (!isNotFound(err)) throw kubeError(err, `reading ConfigMap ${namespace}/${CA_CONFIGMAP}`);
    }
  }
  throw new DrawbridgeError(
    'KUBE_ERROR',
    `no ConfigMap ${CA_CONFIGMAP} with ${CA_KEY} in namespace ${namespaces.join(' or ')}`,
    'the drawbridge controller publishes it on start: check that it runs, or pass --controller-namespace',
  );
}
