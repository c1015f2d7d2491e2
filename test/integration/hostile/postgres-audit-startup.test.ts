// Startup parameters the agent passes on to the server (`options=-c search_path=…`, client_encoding,
// application_name) change what the session's statements do: with the search_path of a startup
// packet, an audited `SELECT f()` runs a function of the client's choosing. session.start records them.
// psql through the real agent against the real PostgreSQL 15, read back from the real audit file.
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../../src/agent/audit.js';
import { type Fixture, agentConninfo, psql, startFixture } from '../postgres/fixture.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

describe('session.start', () => {
  it('records the startup parameters passed on to the server', async () => {
    const extra = `application_name=startup-probe options='-c search_path=elsewhere,public'`;
    const conninfo = agentConninfo(f, f.people.alice, 'alice', 'orders', extra);
    const r = await psql(conninfo, 'show search_path');
    expect(r.stdout.trim()).toBe('elsewhere,public');
    // The session's start, found by its backend process id (psql told the server which it was).
    const pid = Number((await psql(conninfo, 'select pg_backend_pid()')).stdout.trim());
    let start: AuditEvent | undefined;
    for (let i = 0; !start && i < 30; i++, await sleep(100)) {
      start = (await f.agent.auditEvents()).find((e) => e.type === 'session.start' && e.backendPid === pid);
    }
    expect(start?.startupParameters).toMatchObject({
      application_name: 'startup-probe',
      options: '-c search_path=elsewhere,public',
    });
  });
});
