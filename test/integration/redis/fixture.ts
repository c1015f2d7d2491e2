// Shared set-up for the Redis standalone suites: a real Redis 7 (TLS + ACL users), an agent in front
// of it, people with client certificates, and redis-cli / ioredis / raw TLS clients aimed at the agent.
import { rm } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import type { Redis } from 'ioredis';
import type { KeyPairPem } from '../../../src/pki/ca.js';
import type { AgentParts } from '../../../src/agent/engine.js';
import { type TestAgent, type TestAgentOptions, startTestAgent } from '../../support/agent.js';
import { type WorkersAgent, startWorkersAgent } from '../../support/agent-workers.js';
import {
  type Person,
  REDIS_USERS,
  type RedisDatabaseDocs,
  type RedisServer,
  accessRole,
  databaseUser,
  exec,
  peoplePolicy,
  issuePeopleTls,
  rawTls,
  redisDatabaseDocs,
  startRedis,
  ioredisAt,
} from '../../support/redis.js';

/** Kept for suites that import them from here; the builders live in test/support/redis.ts. */
export { accessRole as role, databaseUser as dbUser };

export const PEOPLE = ['alice', 'rita', 'ops', 'mallory'] as const;
export type PersonName = (typeof PEOPLE)[number];

export interface RedisFixture {
  redis: RedisServer;
  agent: TestAgent;
  ca: KeyPairPem;
  caFile: string;
  people: Record<PersonName, Person>;
  /** redis-cli through the agent as `person`; commands as arguments, or lines on stdin. */
  cli(person: PersonName, args: string[], stdin?: string): Promise<string>;
  /** `--tls --cacert … --cert … --key …` for redis-cli / redis-benchmark as `person`. */
  tlsArgs(person: PersonName): string[];
  /** An ioredis client through the agent (RESP3 first, as ioredis does, then RESP2). */
  ioredis(person: PersonName, opts?: { username?: string; password?: string }): Redis;
  /** A raw TLS connection to the agent (for malformed input). */
  raw(person: PersonName): Promise<TLSSocket>;
  /** A raw TLS connection to the agent on `port` (one started with startAgent). */
  rawAt(port: number, person: PersonName): Promise<TLSSocket>;
  /** Another agent in front of the same Redis (other auth types, AgentConfig limits or audit); stopped with the fixture. */
  startAgent(
    docs: object[],
    opts?: Pick<TestAgentOptions, 'limits' | 'audit' | 'metrics' | 'log'>,
  ): Promise<TestAgent>;
  /** redis-cli as `person` through the agent on `port`. */
  cliAt(port: number, person: PersonName, args: string[], stdin?: string): Promise<string>;
  stop(): Promise<void>;
}

/** The `cache` Database and the test people's access (peoplePolicy). */
export function redisDocs(
  redis: RedisServer,
  auth: Pick<RedisDatabaseDocs, 'auth' | 'login'> = { auth: 'password' },
): object[] {
  return [
    ...redisDatabaseDocs({
      name: 'cache',
      uri: `rediss://${redis.host}:${redis.tlsPort}`,
      labels: { env: 'prod' },
      caPem: redis.ca.certPem,
      auth: auth.auth,
      login: auth.login ?? Object.fromEntries(Object.entries(REDIS_USERS).map(([u, v]) => [u, v.password])),
    }),
    ...peoplePolicy(),
  ];
}

/** `parts`: the agent's engines and credential providers, when a test swaps one (reauth.test.ts). */
export async function startRedisFixture(parts?: AgentParts): Promise<RedisFixture> {
  const { dir, ca, caFile, people, agentTls, tls, tlsArgs } = await issuePeopleTls(
    PEOPLE,
    'cache agent',
    'drawbridge-redistest-',
  );
  const redis = await startRedis();
  let agent: TestAgent;
  try {
    agent = await startTestAgent({ database: 'cache', docs: redisDocs(redis), tls: agentTls, parts });
  } catch (err) {
    await redis.stop();
    throw err;
  }
  const clients = new Set<Redis>();
  const agents: TestAgent[] = [agent];
  const cliAt = (port: number, p: PersonName, args: string[], stdin?: string) =>
    exec('redis-cli', [...tlsArgs(p), '-h', '127.0.0.1', '-p', String(port), ...args], stdin);
  const rawAt = (port: number, p: PersonName) => rawTls(port, tls(p));
  return {
    redis,
    agent,
    ca,
    caFile,
    people,
    tlsArgs,
    cli: (p, args, stdin) => cliAt(agent.port, p, args, stdin),
    cliAt,
    async startAgent(docs, opts = {}) {
      const extra = await startTestAgent({ database: 'cache', docs, tls: agentTls, parts, ...opts });
      agents.push(extra);
      return extra;
    },
    ioredis: (p, opts) => ioredisAt(agent.port, tls(p), clients, opts),
    raw: (p) => rawAt(agent.port, p),
    rawAt,
    async stop() {
      clients.forEach((c) => c.disconnect());
      for (const a of agents) await a.stop();
      await redis.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export interface RedisWorkersFixture {
  redis: RedisServer;
  agent: WorkersAgent;
  pki: Awaited<ReturnType<typeof issuePeopleTls<PersonName>>>;
  stop(): Promise<void>;
}

/**
 * A real Redis behind an agent of two worker processes (the CLI's `--workers 2`), for the test people.
 * `auditFifo`: the audit log is a FIFO, which the primary relays the workers' lines to (see startWorkersAgent).
 */
export async function startRedisWorkers(
  dirPrefix: string,
  { limits, auditFifo }: { limits?: object; auditFifo?: boolean } = {},
): Promise<RedisWorkersFixture> {
  const pki = await issuePeopleTls(PEOPLE, 'cache agent', dirPrefix);
  const redis = await startRedis();
  const agent = await startWorkersAgent({
    database: 'cache',
    docs: redisDocs(redis),
    tls: pki.agentTls,
    workers: 2,
    auditFifo,
    ...(limits ? { limits } : {}),
  }).catch(async (err: unknown) => {
    await redis.stop();
    throw err;
  });
  return {
    redis,
    agent,
    pki,
    async stop() {
      await agent.stop();
      await redis.stop();
      await rm(pki.dir, { recursive: true, force: true });
    },
  };
}
