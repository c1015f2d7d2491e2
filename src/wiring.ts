// What an agent build contains, listed in one place: the engine per protocol (with Redis's router
// modes) and the backend credential providers per spec.auth.type. The CLI hands these to the agent;
// nothing registers itself on import. Each agent gets its own engine, so nothing is shared between
// two agents in one process. An engine's modules are imported when an agent of its protocol is made,
// and Redis Cluster's router on a Database's first cluster session: an agent holds only the code its
// Database uses (a PostgreSQL agent no Redis engine, a standalone Redis agent no cluster router).
import type { AgentParts } from './agent/engine.js';
import { secretCredentialProviders } from './agent/credentials.js';
import { awsCredentialProviders } from './aws/providers.js';

export const agentParts: AgentParts = {
  engines: {
    postgres: async () => new (await import('./engines/postgres/index.js')).PostgresEngine(),
    redis: async () => {
      const { RedisEngine, standaloneRouters } = await import('./engines/redis/index.js');
      return new RedisEngine({
        standalone: standaloneRouters,
        cluster: async () => new (await import('./engines/redis/cluster/index.js')).ClusterRouters(),
      });
    },
  },
  credentials: { ...secretCredentialProviders, ...awsCredentialProviders },
};
