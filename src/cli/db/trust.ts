// The CA that signs agent serving certificates, so clients verify the agent (sslmode=verify-full,
// redis-cli --cacert). The controller publishes its certificate in a ConfigMap in its own namespace
// (src/operator/ca-store.ts); it is public, and the chart lets every authenticated user read it. Only
// the controller's namespace is trusted: anyone able to write a ConfigMap in a Database's namespace
// could otherwise plant a CA of their own.
import * as k8s from '@kubernetes/client-node';
import { DrawbridgeError } from '../../errors.js';
import { CA_CONFIGMAP_NAME } from '../../operator/ca-store.js';
import { isNotFound, kubeError } from './kube.js';

const CA_KEY = 'ca.crt';

export async function fetchAgentCA(kc: k8s.KubeConfig, controllerNamespace: string): Promise<string> {
  const where = `ConfigMap ${controllerNamespace}/${CA_CONFIGMAP_NAME}`;
  let cm: k8s.V1ConfigMap;
  try {
    cm = await kc.makeApiClient(k8s.CoreV1Api).readNamespacedConfigMap({
      name: CA_CONFIGMAP_NAME,
      namespace: controllerNamespace,
    });
  } catch (err) {
    if (!isNotFound(err)) throw kubeError(err, `reading ${where}`);
    throw new DrawbridgeError(
      'KUBE_ERROR',
      `${where} not found`,
      'the drawbridge controller publishes it on start: check that it runs, or pass --controller-namespace',
    );
  }
  const pem = cm.data?.[CA_KEY];
  if (!pem?.includes('BEGIN CERTIFICATE')) {
    throw new DrawbridgeError('KUBE_ERROR', `${where} has no PEM certificate under ${CA_KEY}`);
  }
  return pem;
}
