// A local listener that reaches an agent pod through the API server's pods/portforward, like
// `kubectl port-forward`: each accepted connection gets its own forwarded stream. Bytes are opaque
// here; TLS between the client and the agent runs end to end inside the tunnel.
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import * as k8s from '@kubernetes/client-node';
import type { Database } from '../../api/database.js';
import { DrawbridgeError } from '../../errors.js';
import { agentSelector } from '../../operator/names.js';
import { kubeError } from './kube.js';

/** The labels the controller's agent Deployment selects its pods by. */
function podSelector(db: Database): string {
  return Object.entries(agentSelector(db.metadata.name))
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
}

async function readyAgentPod(kc: k8s.KubeConfig, db: Database): Promise<string> {
  const namespace = db.metadata.namespace ?? 'default';
  let pods: k8s.V1PodList;
  try {
    pods = await kc
      .makeApiClient(k8s.CoreV1Api)
      .listNamespacedPod({ namespace, labelSelector: podSelector(db) });
  } catch (err) {
    if (err instanceof k8s.ApiException && err.code === 403) {
      throw new DrawbridgeError(
        'KUBE_ERROR',
        `the agent of ${namespace}/${db.metadata.name} is not reachable from here, and you may not port-forward to it`,
        'run where the status.endpoint resolves (inside the cluster network), pass --endpoint host:port, ' +
          'or ask an admin to set users.portForward=true in the drawbridge Helm chart',
        { cause: err },
      );
    }
    throw kubeError(err, `finding the agent pods of ${namespace}/${db.metadata.name}`);
  }
  const ready = pods.items.find(
    (p) =>
      !p.metadata?.deletionTimestamp &&
      p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'),
  );
  if (!ready?.metadata?.name) {
    throw new DrawbridgeError(
      'BACKEND_UNREACHABLE',
      `no ready agent pod for ${namespace}/${db.metadata.name}`,
      `check kubectl -n ${namespace} describe database ${db.metadata.name}`,
    );
  }
  return ready.metadata.name;
}

export interface Forwarder {
  port: number;
  close(): Promise<void>;
}

/** `onError` hears about connections the API server refused to forward (each is closed). */
export async function forwardToAgent(
  kc: k8s.KubeConfig,
  db: Database,
  targetPort: number,
  onError: (err: Error) => void,
): Promise<Forwarder> {
  const namespace = db.metadata.namespace ?? 'default';
  const pod = await readyAgentPod(kc, db);
  const forward = new k8s.PortForward(kc);
  const sockets = new Set<Socket>();
  const server: Server = createServer({ noDelay: true }, (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    // The client may hang up while the agent's last bytes are still in flight: the tunnel then writes
    // after FIN. That ends this connection only, never the forwarder (an unhandled 'error' would).
    socket.on('error', () => socket.destroy());
    forward
      .portForward(namespace, pod, [targetPort], socket, null, socket)
      .then((ws) => {
        const socketOf = typeof ws === 'function' ? ws() : ws;
        socketOf?.on('close', () => socket.end());
        socket.once('close', () => socketOf?.close());
      })
      .catch((err: unknown) => {
        onError(kubeError(err, `port-forward to ${namespace}/${pod}`));
        socket.destroy();
      });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => resolve());
      }),
  };
}
