// The PostgreSQL agent on a Node whose OpenSSL predates 3.5 (the machine's Node 20), as a standalone
// agent may run, with two worker processes: session after session (TLS to the client and to the
// server, SCRAM) runs simple and extended-protocol queries, and psql connects: CI runs every other
// suite on Node 24. A smoke test of the whole path and of node:cluster there; the regression that
// broke Redis sessions on Node 20 has its own test (test/integration/redis/older-openssl.test.ts).
// Skipped where the machine has no such Node.
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WorkersAgent } from '../../support/agent-workers.js';
import { olderNode } from '../../support/older-node.js';
import {
  type Fixture,
  agentConninfo,
  pgClient,
  psql,
  startFixture,
  startWorkersAgentFor,
} from './fixture.js';

const node = olderNode();
let f: Fixture;
let agent: WorkersAgent;

beforeAll(async () => {
  if (!node) return;
  f = await startFixture();
  agent = await startWorkersAgentFor(f, 2, node);
}, 60_000);
afterAll(async () => {
  if (agent) expect(await agent.stop()).toBe(0);
  await f?.stop();
});

it.skipIf(!node)(
  'serves session after session over TLS and SCRAM, simple and extended protocol, and psql',
  async () => {
    const at = { ...f, agent: { ...f.agent, port: agent.port } };
    for (let i = 0; i < 4; i++) {
      const c = pgClient(at, f.people.alice, 'alice', 'orders');
      await c.connect();
      try {
        expect((await c.query('select current_user as u')).rows).toEqual([{ u: 'alice' }]);
        expect((await c.query('select $1::int + 1 as n', [i])).rows).toEqual([{ n: i + 1 }]);
      } finally {
        await c.end();
      }
    }
    const out = await psql(agentConninfo(at, f.people.alice, 'alice', 'orders'), 'select 40 + 2');
    expect(out.stdout).toContain('42');
  },
  60_000,
);
