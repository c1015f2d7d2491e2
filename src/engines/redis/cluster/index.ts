// Redis Cluster behind one agent endpoint: the cluster Routers of one engine (one agent). One
// ClusterService per backend cluster is shared by every session of that agent, and closed with it.
//
//   session ──dispatch──▶ ClusterRouter (router.ts) ──▶ RoutedSend (sender.ts): slot → node, MOVED/ASK/
//                          │  Transaction, PubSub,       TRYAGAIN/CLUSTERDOWN handled, never shown
//                          │  fan-out, SCAN, split        │
//                          ▼                              ▼
//               ClusterService (service.ts) ── LoginPool per database login (pool.ts) ── NodeConnection
//               Topology (topology.ts, CLUSTER SHARDS/SLOTS + MOVED, epoch)     per node (node-connection.ts)
//               CommandRules (command-rules.ts, key specs + tips from COMMAND)
//
// RESP2 and RESP3 sessions never share a node connection (protocol.ts): a pool per login and protocol.
//
// Only nodes the cluster names are ever dialled: a MOVED/ASK is a hint checked against the shape
// (redirect.ts), and one answering a script or function goes to the client unfollowed — as does its
// TRYAGAIN/CLUSTERDOWN/LOADING, never retried: a retry would run the script, and its writes, again.
//
// What the backend must allow the database users: COMMAND (routing rules), CLUSTER SHARDS or CLUSTER
// SLOTS (topology; any one logged-in user will do, the first session's is used), plus what their
// clients run. A node that stops answering fails its commands after spec.redis.commandTimeout
// (hung-nodes.ts). Differences from one server, by necessity: WAIT's timeout is capped at 1 s (it
// holds a shared connection, and must: see MAX_WAIT_MS in blocking.ts); MONITOR, CLIENT
// NO-EVICT/NO-TOUCH are refused (connection state on shared connections); CLIENT TRACKING (RESP3)
// moves the session to node connections of its own (tracking.ts); SCAN's guarantee holds while
// slots do not move during the scan; cross-slot MSET/DEL/... are not atomic across slots; a
// transaction or subscription begun before an AUTH finishes as the user that began it.
import { errorMessage } from '../../../errors.js';
import type { BackendLogin, Router, RouterOptions, Routers } from '../router.js';
import type { RespVersion } from '../serializer.js';
import { Resp3RefusedError } from './node-connection.js';
import type { LoginPool } from './pool.js';
import { ClusterRouter } from './router.js';
import { ClusterService } from './service.js';

export class ClusterRouters implements Routers {
  private readonly services = new Map<string, ClusterService>();

  async open(opts: RouterOptions): Promise<Router> {
    const { spec } = opts.database;
    const key = `${spec.uri}|${JSON.stringify(spec.tls)}`;
    let service = this.services.get(key);
    if (!service) {
      const log = opts.log.child({ cluster: spec.uri });
      service = new ClusterService(opts.database, opts.secrets, log, opts.renew, { metrics: opts.metrics });
      this.services.set(key, service);
    }
    let pool: LoginPool;
    try {
      pool = await this.ready(service, opts.login, opts.protocol ?? 2);
    } catch (err) {
      opts.log.debug({ sessionId: opts.sessionId, err: errorMessage(err) }, 'cluster router not ready');
      throw err;
    }
    return new ClusterRouter(service, pool);
  }

  /**
   * The login's pool of the protocol the session starts in (a HELLO 3 that connects it: RESP3, so no
   * RESP2 connection is opened just to be left idle). Nodes refusing RESP3 get the session in RESP2,
   * where its HELLO 3 is answered NOPROTO (router.ts).
   */
  private async ready(
    service: ClusterService,
    login: BackendLogin,
    protocol: RespVersion,
  ): Promise<LoginPool> {
    const pool = service.join(login, protocol);
    try {
      await service.ready(pool);
      return pool;
    } catch (err) {
      service.leave(pool);
      if (protocol === 3 && err instanceof Resp3RefusedError) return this.ready(service, login, 2);
      throw err;
    }
  }

  /** Closes every cluster connection of this agent (shutdown). */
  close(): void {
    for (const s of this.services.values()) s.close();
    this.services.clear();
  }
}
