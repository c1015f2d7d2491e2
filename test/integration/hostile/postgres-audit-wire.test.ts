// What PostgreSQL clients tell the server that the audit must pin down. A parameter sent in binary
// format is shown as hex, its first 128 bytes; past them the audit must still pin the whole value (its
// SHA-256), as for a text value past the limit: otherwise a client sends a text value in binary format
// (for `text` the same bytes) and all but its head goes unrecorded. Startup parameters the agent passes
// on (`options=-c search_path=…`, client_encoding, application_name) change what the statements do:
// with the search_path of a startup packet, an audited `SELECT f()` runs a function of the client's
// choosing; session.start records them. Raw wire messages and psql through the real agent against the
// real PostgreSQL 15, read back from the real audit file.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../../src/agent/audit.js';
import { type Fixture, agentConninfo, psql, startFixture } from '../postgres/fixture.js';
import { fe } from '../../unit/postgres/factory.js';
import { exchange, queries, withSession } from './postgres-audit-support.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

describe('binary parameters', () => {
  it('past the bytes shown, end with the size and SHA-256 of the whole value', async () => {
    const hidden = Buffer.from(`${'h'.repeat(128)}; and what follows is only in the hash`);
    await withSession(f, async (s) => {
      const errors = await exchange(s, [
        fe.parse('', 'SELECT $1::text'),
        fe.bind('', '', [1], [hidden]),
        fe.execute(''),
        fe.sync(),
      ]);
      expect(errors).toEqual([]);
      const [b] = await queries(f, s, 1);
      const sha = createHash('sha256').update(hidden).digest('hex');
      const head = hidden.subarray(0, 128).toString('hex');
      expect(b!.parameters).toEqual([`\\x${head}…[${hidden.length} bytes sha256:${sha}]`]);
    });
  });
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

describe('a malformed message split across reads', () => {
  it("never reaches the server completed by bytes of the agent's own", async () => {
    // A Query with no string terminator: the agent refuses it once its last bytes come, and ends the
    // session. Its head was relayed already; the server must not get it completed by the agent's
    // Terminate ('X', 0, 0, 0, 4): in place of its last 2 bytes, they make it `… AS X`.
    const body = Buffer.from('CREATE TABLE wedge AS SELECT 1 AS ab');
    const message = Buffer.concat([Buffer.from([0x51, 0, 0, 0, 0]), body]);
    message.writeInt32BE(4 + body.length, 1);
    await withSession(f, async (s) => {
      s.tls.write(message.subarray(0, message.length - 2));
      await sleep(300);
      s.tls.write(message.subarray(message.length - 2));
      await sleep(1000);
    });
    const made = await f.pg.admin(`select count(*) from pg_tables where tablename like 'wedge%'`, 'orders');
    expect(made.trim()).toBe('0');
  });
});
