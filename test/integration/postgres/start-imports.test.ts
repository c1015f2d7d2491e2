// What a standalone PostgreSQL agent (`drawbridge agent --config`, as the CLI runs it) loads: its own
// engine, not the Redis one (src/wiring.ts imports an engine when an agent of its protocol is made),
// nor the AWS SDK (a Database with password auth), the Kubernetes client or an ASN.1 library. An idle
// agent's fixed memory is mostly the code it has loaded (README, Performance). With workers, only the
// primary reads the config file (YAML, the API's zod schemas) and only the workers load the engine.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type WorkersAgent, startWorkersAgent } from '../../support/agent-workers.js';
import { type ImportProbe, importProbe } from '../../support/import-probe-log.js';
import { type Fixture, baseDocs, pgClient, startFixture } from './fixture.js';

const POSTGRES_ENGINE = '/dist/src/engines/postgres/';
const REDIS_ENGINE = '/dist/src/engines/redis/';

let f: Fixture;
let dir: string;
let probe: ImportProbe;
let agent: WorkersAgent;
let pooled: { probe: ImportProbe; agent: WorkersAgent };

beforeAll(async () => {
  f = await startFixture();
  dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-pg-imports-'));
  probe = await importProbe(dir, [
    POSTGRES_ENGINE,
    REDIS_ENGINE,
    '@aws-sdk',
    '@kubernetes/client-node',
    '@peculiar/',
  ]);
  agent = await startWorkersAgent({
    database: 'orders-pg',
    docs: baseDocs(f.pg.port, f.pg.ca.certPem),
    tls: f.agentTls,
    workers: 1,
    nodeArgs: probe.nodeArgs,
    env: probe.env,
  });
  const pooledProbe = await importProbe(await mkdtemp(path.join(dir, 'pooled-')), [
    POSTGRES_ENGINE,
    'zod',
    'yaml',
  ]);
  pooled = {
    probe: pooledProbe,
    agent: await startWorkersAgent({
      database: 'orders-pg',
      docs: baseDocs(f.pg.port, f.pg.ca.certPem),
      tls: f.agentTls,
      workers: 2,
      nodeArgs: pooledProbe.nodeArgs,
      env: pooledProbe.env,
    }),
  };
}, 60_000);
/** alice's query through the agent listening on `port` is answered. */
async function servesAlice(port: number) {
  const c = pgClient({ ...f, agent: { ...f.agent, port } }, f.people.alice, 'alice', 'orders');
  await c.connect();
  try {
    expect((await c.query('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
  } finally {
    await c.end();
  }
}

afterAll(async () => {
  await agent?.stop();
  await pooled?.agent.stop();
  await f?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('serves a session with its own engine only: no Redis engine, AWS SDK or Kubernetes client', async () => {
  await servesAlice(agent.port);
  // The probe works: the agent's process loaded the engine it serves with.
  expect(await probe.loadedBy(POSTGRES_ENGINE)).toEqual([agent.child.pid]);
  expect(await probe.loadedBy(REDIS_ENGINE)).toEqual([]);
  expect(await probe.loadedBy('@aws-sdk')).toEqual([]);
  expect(await probe.loadedBy('@kubernetes/client-node')).toEqual([]);
  // Client certificates are read by src/pki/subject-der.ts, with no ASN.1 library (~1.5 MB of heap).
  expect(await probe.loadedBy('@peculiar/')).toEqual([]);
});

it('with workers, parses the config in the primary only: the workers load no YAML parser or zod', async () => {
  const { probe, agent } = pooled;
  await servesAlice(agent.port);
  const workers = await agent.workerPids();
  expect(workers).toHaveLength(2);
  expect((await probe.loadedBy(POSTGRES_ENGINE)).sort()).toEqual([...workers].sort());
  expect(await probe.loadedBy('yaml')).toEqual([agent.child.pid]);
  expect(await probe.loadedBy('zod')).toEqual([agent.child.pid]);
});
