// Prometheus metrics for the agent, one registry per agent so tests can run several in a process.
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';

export class AgentMetrics {
  readonly registry = new Registry();
  readonly sessionsActive = new Gauge({
    name: 'drawbridge_sessions_active',
    help: 'Client sessions currently open',
    labelNames: ['protocol'],
    registers: [this.registry],
  });
  readonly sessionsTotal = new Counter({
    name: 'drawbridge_sessions_total',
    help: 'Client sessions by outcome',
    labelNames: ['protocol', 'outcome'],
    registers: [this.registry],
  });
  readonly deniedTotal = new Counter({
    name: 'drawbridge_access_denied_total',
    help: 'Sessions and commands denied by access rules',
    labelNames: ['protocol', 'level'],
    registers: [this.registry],
  });
  readonly clusterRedirectsRefused = new Counter({
    name: 'drawbridge_cluster_redirects_refused_total',
    help: 'Redis Cluster MOVED/ASK replies not followed, or TRYAGAIN/CLUSTERDOWN/LOADING not retried: from a script or function (reason=script), or to a node the cluster does not name',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly connections = new Gauge({
    name: 'drawbridge_client_connections',
    help: 'Client connections open, logged in or not (compare with limits.maxConnections)',
    labelNames: ['protocol'],
    registers: [this.registry],
  });
  readonly limitExceeded = new Counter({
    name: 'drawbridge_limit_exceeded_total',
    help: 'Clients refused or disconnected by a limit (label: its name in spec.agent.limits)',
    labelNames: ['protocol', 'limit'],
    registers: [this.registry],
  });
  readonly bytesTotal = new Counter({
    name: 'drawbridge_bytes_total',
    help: 'Bytes relayed',
    labelNames: ['protocol', 'direction'],
    registers: [this.registry],
  });

  constructor(defaults = false) {
    if (defaults) collectDefaultMetrics({ register: this.registry });
  }
}
