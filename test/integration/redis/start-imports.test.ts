// What a standalone agent in front of a standalone Redis loads (run as the CLI runs it): the Redis
// engine without its Redis Cluster router (imported on a Database's first cluster session), and not
// the PostgreSQL engine (src/wiring.ts), the AWS SDK or the Kubernetes client.
import { rm } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type WorkersAgent, startWorkersAgent } from '../../support/agent-workers.js';
import { type ImportProbe, importProbe } from '../../support/import-probe-log.js';
import { type RedisServer, ioredisAt, issuePeopleTls, startRedis } from '../../support/redis.js';
import { redisDocs } from './fixture.js';

const REDIS_ENGINE = '/dist/src/engines/redis/';
const CLUSTER_ROUTER = '/dist/src/engines/redis/cluster/index.js';
const POSTGRES_ENGINE = '/dist/src/engines/postgres/';

let redis: RedisServer;
let pki: Awaited<ReturnType<typeof issuePeopleTls>>;
let probe: ImportProbe;
let agent: WorkersAgent;
const clients = new Set<Redis>();

beforeAll(async () => {
  redis = await startRedis();
  pki = await issuePeopleTls(['alice'], 'cache agent', 'drawbridge-redis-imports-');
  probe = await importProbe(pki.dir, [REDIS_ENGINE, CLUSTER_ROUTER, POSTGRES_ENGINE, '@aws-sdk']);
  agent = await startWorkersAgent({
    database: 'cache',
    docs: redisDocs(redis),
    tls: pki.agentTls,
    workers: 1,
    nodeArgs: probe.nodeArgs,
    env: probe.env,
  });
}, 60_000);
afterAll(async () => {
  clients.forEach((c) => c.disconnect());
  await agent?.stop();
  await redis?.stop();
  if (pki) await rm(pki.dir, { recursive: true, force: true });
});

it('serves a session without the cluster router, the PostgreSQL engine or the AWS SDK', async () => {
  const c = ioredisAt(agent.port, pki.tls('alice'), clients, { username: 'app', password: 'x' });
  await c.set('start-imports', 'v');
  expect(await c.get('start-imports')).toBe('v');
  expect(await probe.loadedBy(REDIS_ENGINE)).toEqual([agent.child.pid]);
  expect(await probe.loadedBy(CLUSTER_ROUTER)).toEqual([]);
  expect(await probe.loadedBy(POSTGRES_ENGINE)).toEqual([]);
  expect(await probe.loadedBy('@aws-sdk')).toEqual([]);
});
