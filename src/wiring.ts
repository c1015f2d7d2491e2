// What an agent build contains, listed in one place: the engine per protocol (with Redis's router
// modes) and the backend credential providers per spec.auth.type. The CLI hands these to the agent;
// nothing registers itself on import. Each agent gets its own engine, so nothing is shared between
// two agents in one process.
import type { AgentParts } from './agent/engine.js';
import { secretCredentialProviders } from './agent/credentials.js';
import { awsCredentialProviders } from './aws/providers.js';
import { PostgresEngine } from './engines/postgres/index.js';
import { ClusterRouters, RedisEngine, standaloneRouters } from './engines/redis/index.js';

export const agentParts: AgentParts = {
  engines: {
    postgres: () => new PostgresEngine(),
    redis: () => new RedisEngine({ standalone: standaloneRouters, cluster: () => new ClusterRouters() }),
  },
  credentials: { ...secretCredentialProviders, ...awsCredentialProviders },
};
