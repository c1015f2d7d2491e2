// Redis Cluster behind one agent endpoint: registers the cluster router with the session's router
// registry. One ClusterService per backend cluster is shared by every session of the agent.
import { errorMessage } from '../../../errors.js';
import { registerRouter } from '../router.js';
import { ClusterRouter } from './router.js';
import { ClusterService } from './service.js';

const services = new Map<string, ClusterService>();

registerRouter('cluster', async (opts) => {
  const { spec } = opts.database;
  const key = `${spec.uri}|${JSON.stringify(spec.tls)}`;
  let service = services.get(key);
  if (!service) {
    service = new ClusterService(opts.database, opts.secrets, opts.log.child({ cluster: spec.uri }));
    services.set(key, service);
  }
  const pool = service.join(opts.login);
  try {
    await service.ready(pool);
  } catch (err) {
    service.leave(pool);
    opts.log.debug({ sessionId: opts.sessionId, err: errorMessage(err) }, 'cluster router not ready');
    throw err;
  }
  return new ClusterRouter(service, pool);
});

/** Closes every cluster connection (agent shutdown). */
export function closeClusterServices(): void {
  for (const s of services.values()) s.close();
  services.clear();
}
