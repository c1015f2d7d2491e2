// Where a client reaches the agent: --endpoint when given, else the Database's status.endpoint when it
// answers from here (inside the cluster network, a VPN, or the local test control plane), else a
// port-forward to an agent pod through the API server. The TLS server name is the agent Service's name,
// worked out here from the Database's namespace and name, whichever way the bytes travel: never taken
// from status, which whoever may write databases/status could point at another Database's agent (its
// certificate would then pass the name check, and the session would go to the wrong database).
import { connect } from 'node:net';
import type * as k8s from '@kubernetes/client-node';
import type { Database } from '../../api/database.js';
import { DrawbridgeError } from '../../errors.js';
import { agentHost } from '../../operator/names.js';
import { forwardToAgent } from './portforward.js';

export interface Endpoint {
  /** Address to open TCP connections to. */
  host: string;
  port: number;
  /** Name the agent's certificate must carry (libpq `host` with `hostaddr`, TLS SNI). */
  serverName: string;
  via: 'endpoint' | 'status' | 'port-forward';
  close(): Promise<void>;
}

export interface EndpointOptions {
  endpoint?: string;
  /** Default: the agent Service's name (drawbridge-<name>.<namespace>.svc), which its certificate names. */
  tlsServerName?: string;
  /** How long status.endpoint gets to accept a TCP connection before we port-forward instead. */
  probeMs?: number;
  /** Told about port-forwarded connections that failed. */
  onForwardError?(err: Error): void;
}

export function parseHostPort(text: string, what: string): { host: string; port: number } {
  // A DNS name or an IP: the host goes into URLs and conninfo strings, where "/?@&=" would start fields.
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(text.trim());
  const port = Number(m?.[2]);
  if (!m || port < 1 || port > 65535) {
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      `${what} "${text}" is not host:port`,
      'write it as host:port',
    );
  }
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}

function reachableWithin(host: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

const noop = async () => {};

export async function resolveEndpoint(
  kc: k8s.KubeConfig,
  db: Database,
  opts: EndpointOptions,
): Promise<Endpoint> {
  const status = db.status?.endpoint ? parseHostPort(db.status.endpoint, 'status.endpoint') : undefined;
  const { namespace = 'default', name } = db.metadata;
  const serverName = opts.tlsServerName ?? agentHost(namespace, name);
  if (opts.endpoint) {
    const { host, port } = parseHostPort(opts.endpoint, '--endpoint');
    return { host, port, serverName, via: 'endpoint', close: noop };
  }
  if (!status) {
    throw new DrawbridgeError(
      'BACKEND_UNREACHABLE',
      `database ${db.metadata.namespace}/${db.metadata.name} has no status.endpoint yet`,
      `wait for its agent to be ready (kubectl -n ${db.metadata.namespace} get database ${db.metadata.name}), or pass --endpoint host:port`,
    );
  }
  if (await reachableWithin(status.host, status.port, opts.probeMs ?? 1500)) {
    return { ...status, serverName, via: 'status', close: noop };
  }
  const forward = await forwardToAgent(kc, db, status.port, opts.onForwardError ?? (() => {}));
  return { host: '127.0.0.1', port: forward.port, serverName, via: 'port-forward', close: forward.close };
}
