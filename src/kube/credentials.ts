// Where a KubeClient gets its server, TLS options and headers: a kubeconfig (through client-node, which
// the CLI loads), or, in a pod, the service account the kubelet mounts, read here directly. Why both:
// loading client-node costs a process ~70 MB RSS, and an in-cluster agent needs nothing else of it.
import { readFileSync } from 'node:fs';
import type https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';

export interface KubeCredentials {
  readonly server: URL;
  readonly tls: https.AgentOptions;
  /** The headers of the next request: a token may have been rotated since the last one. */
  headers(): Promise<Record<string, string>>;
}

/** Where the kubelet mounts a pod's service account: token, ca.crt, namespace. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount';
/**
 * The kubelet rewrites the token file well before the token expires (at 80% of its life); client-go and
 * client-node re-read it when their copy is older than a minute, never on every request.
 */
export const TOKEN_REREAD_MS = 60_000;

/** A pod's environment: the kubelet sets these for every container. */
export function inPod(env: NodeJS.ProcessEnv): boolean {
  return !!env.KUBERNETES_SERVICE_HOST && !!env.KUBERNETES_SERVICE_PORT;
}

/** The pod's service account: the API server's Service address, its CA and the (rotating) token. */
export function serviceAccountCredentials(
  env: NodeJS.ProcessEnv,
  dir: string = SERVICE_ACCOUNT_DIR,
  now: () => number = Date.now,
): KubeCredentials {
  const host = env.KUBERNETES_SERVICE_HOST;
  const port = env.KUBERNETES_SERVICE_PORT;
  if (!host || !port)
    throw new Error(
      'KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set: run in a pod or pass --kubeconfig',
    );
  const server = new URL(`https://${net.isIPv6(host) ? `[${host}]` : host}:${port}`);
  const ca = readMounted(path.join(dir, 'ca.crt'));
  const tokenFile = path.join(dir, 'token');
  const read = () => ({ authorization: `Bearer ${readMounted(tokenFile).trim()}` });
  let headers = read();
  let readAt = now();
  return {
    server,
    tls: { ca },
    async headers() {
      if (now() - readAt >= TOKEN_REREAD_MS) {
        headers = read();
        readAt = now();
      }
      return headers;
    },
  };
}

function readMounted(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new Error(
      `cannot read the service account's ${path.basename(file)} at ${file} (${code}): ` +
        'mount the token (automountServiceAccountToken: true) or pass --kubeconfig',
    );
  }
}

/** A kubeconfig's current cluster and user; token files and exec plugins are asked again per request. */
export async function kubeConfigCredentials(kc: KubeConfig): Promise<KubeCredentials> {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig has no current cluster; pick a context or pass --kubeconfig');
  const opts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(opts);
  const tls: https.AgentOptions = {
    ca: opts.ca,
    cert: opts.cert,
    key: opts.key,
    rejectUnauthorized: opts.rejectUnauthorized,
    servername: opts.servername,
  };
  // Token files and exec plugins rotate credentials; everything else is fixed at start-up.
  const user = kc.getCurrentUser();
  const fixed =
    user?.authProvider || user?.exec ? undefined : { ...(opts.headers as Record<string, string>) };
  return {
    server: new URL(cluster.server),
    tls,
    async headers() {
      if (fixed) return fixed;
      const next: https.RequestOptions = {};
      await kc.applyToHTTPSOptions(next);
      return { ...(next.headers as Record<string, string> | undefined) };
    },
  };
}
