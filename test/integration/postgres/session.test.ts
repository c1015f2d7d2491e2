// What flows through an established session: the extended protocol with parameters, COPY both ways,
// large results and statements, pipelining (pgbench), many sessions at once, query cancellation, and
// the audit events all of that leaves behind.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../../src/agent/audit.js';
import { StartupCode } from '../../../src/engines/postgres/messages.js';
import { startTestAgent } from '../../support/agent.js';
import {
  type Fixture,
  agentConninfo,
  baseDocs,
  pgClient,
  psql,
  runClient,
  spawnClient,
  startFixture,
} from './fixture.js';
import { cancelOverTls, cancelPlain, rawSession } from './raw-client.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

const alice = () => pgClient(f, f.people.alice, 'alice', 'orders');

/** What @types/pg leaves out: the key from BackendKeyData, the query in flight, and Client#cancel. */
interface PgInternals {
  processID: number;
  secretKey: number;
  activeQuery: unknown;
  cancel(client: pg.Client, query: unknown): void;
}
const internals = (c: pg.Client) => c as unknown as PgInternals;

async function withClient<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = alice();
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Audit events of one type whose fields match, waiting briefly for the sink to flush. */
async function audited(
  type: AuditEvent['type'],
  match: (e: AuditEvent) => boolean,
  atLeast = 1,
): Promise<AuditEvent[]> {
  let found: AuditEvent[] = [];
  for (let i = 0; i < 20 && found.length < atLeast; i++) {
    if (i > 0) await sleep(100);
    found = (await f.agent.auditEvents()).filter((e) => e.type === type && match(e));
  }
  return found;
}

describe('extended protocol', () => {
  it('runs parameterized statements and audits them with their parameters', async () => {
    await withClient(async (c) => {
      expect((await c.query('select $1::int + $2::int as sum', [2, 40])).rows[0].sum).toBe(42);
      for (const v of ['first', 'second']) {
        const r = await c.query({
          name: 'echo',
          text: 'select $1::text as v, $2::text as n',
          values: [v, null],
        });
        expect(r.rows[0]).toEqual({ v, n: null });
      }
      const bin = await c.query('select $1::bytea as b', [Buffer.from([1, 2, 255])]);
      expect(bin.rows[0].b).toEqual(Buffer.from([1, 2, 255]));
    });
    const sum = await audited('query', (e) => e.query === 'select $1::int + $2::int as sum');
    expect(sum[0]).toMatchObject({
      user: 'alice',
      dbUser: 'alice',
      dbName: 'orders',
      parameters: ['2', '40'],
    });
    const named = await audited('query', (e) => e.statement === 'echo', 2);
    expect(named.map((e) => e.parameters)).toEqual([
      ['first', null],
      ['second', null],
    ]);
    expect(named[1]!.query).toBe('select $1::text as v, $2::text as n');
    const binary = await audited('query', (e) => e.query === 'select $1::bytea as b');
    expect(binary[0]!.parameters).toEqual(['\\x0102ff']);
  });

  it('carries statements and parameters larger than the audit capture, auditing a cut', async () => {
    const big = 'x'.repeat(3_000_000);
    await withClient(async (c) => {
      expect((await c.query(`select length('${big}') as n`)).rows[0].n).toBe(3_000_000);
      expect((await c.query('select length($1::text) as n', [big])).rows[0].n).toBe(3_000_000);
    });
    const cut = await audited('query', (e) => e.truncated === true, 2);
    expect(cut.length).toBeGreaterThanOrEqual(2);
    // Cut past the 1 MiB capture: the head, and the size and SHA-256 of the whole statement.
    const text = `select length('${big}') as n`;
    const sha = createHash('sha256').update(text).digest('hex');
    expect(cut[0]!.query).toBe(`${text.slice(0, 4096)}…[${text.length} bytes sha256:${sha}]`);
  });

  it('carries a Bind of 40,000 parameters (counts are unsigned 16-bit, as PostgreSQL reads them)', async () => {
    const n = 40_000;
    const text = `select array_length(array[${Array.from({ length: n }, (_, i) => `$${i + 1}::int`).join(',')}], 1) as n`;
    const values = Array.from({ length: n }, (_, i) => i);
    await withClient(async (c) => {
      expect((await c.query(text, values)).rows[0].n).toBe(n);
    });
    // The statement is longer than the audit's capture: its line has the head, cut, and every value.
    const [e] = await audited('query', (e) => String(e.query).startsWith(text.slice(0, 4096)));
    expect(e!.parameters).toEqual(values.map(String));
  });

  it('streams a large result (20 MB) to the client', async () => {
    const rows = await withClient(async (c) => {
      const r = await c.query("select repeat('y', 1000) as v from generate_series(1, 20000)");
      return r.rows as { v: string }[];
    });
    expect(rows).toHaveLength(20000);
    expect(rows.every((r) => r.v.length === 1000)).toBe(true);
  });
});

describe('psql and pgbench', () => {
  const conn = () => agentConninfo(f, f.people.alice, 'alice', 'orders');

  it('copies 50,000 rows in with COPY FROM STDIN and back out with COPY TO STDOUT', async () => {
    const rows = Array.from({ length: 50_000 }, (_, i) => `${i}\tname-${i}`).join('\n') + '\n';
    expect((await psql(conn(), 'create table copied (id int, name text)')).stderr).toBe('');
    const copyIn = await psql(conn(), 'copy copied from stdin', rows);
    expect(copyIn.stderr).toBe('');
    expect(copyIn.stdout.trim()).toBe('COPY 50000');
    const copyOut = await psql(conn(), 'copy (select * from copied order by id) to stdout');
    expect(copyOut.stdout).toBe(rows);
    const audit = await audited('query', (e) => e.query === 'copy copied from stdin');
    expect(audit).toHaveLength(1);
  });

  it('runs pgbench -i and a select-only run', async () => {
    const init = await runClient('pgbench', ['-i', '-s', '1', '-q', conn()]);
    expect(init.code, init.stderr).toBe(0);
    const run = await runClient('pgbench', ['-S', '-n', '-c', '4', '-j', '2', '-t', '200', conn()]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('number of transactions actually processed: 800/800');
  });

  it('runs pipelined extended-protocol batches (pgbench \\startpipeline)', async () => {
    const script = path.join(f.dir, 'pipeline.sql');
    const body = Array.from(
      { length: 20 },
      (_, i) => `select ${i} as n, abalance from pgbench_accounts where aid = ${i + 1};`,
    );
    await writeFile(script, ['\\startpipeline', ...body, '\\endpipeline', ''].join('\n'));
    const run = await runClient('pgbench', [
      '-n',
      '-M',
      'extended',
      '-c',
      '2',
      '-t',
      '50',
      '-f',
      script,
      conn(),
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('number of transactions actually processed: 100/100');
  });
});

describe('concurrency', () => {
  it('serves 100 sessions at once, each on its own backend', async () => {
    const clients = Array.from({ length: 100 }, alice);
    await Promise.all(clients.map((c) => c.connect()));
    try {
      const pids = await Promise.all(
        clients.map(async (c) => (await c.query('select pg_backend_pid() as pid')).rows[0].pid as number),
      );
      expect(new Set(pids).size).toBe(100);
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });
});

describe('cancel', () => {
  const sleepQuery = (c: pg.Client) => {
    const started = Date.now();
    const done = c.query('select pg_sleep(30)').then(
      () => ({ ms: Date.now() - started, code: 'finished' }),
      (err: { code?: string }) => ({ ms: Date.now() - started, code: err.code }),
    );
    return done;
  };
  const waitActive = async () => {
    for (let i = 0; i < 50; i++) {
      const r = await f.pg.admin(
        `select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'`,
      );
      if (r.trim() !== '0') return;
      await sleep(50);
    }
    throw new Error('pg_sleep(30) never became active');
  };

  it("cancels pg_sleep(30) through pg's cancel API (plaintext CancelRequest)", async () => {
    await withClient(async (c) => {
      const result = sleepQuery(c);
      await waitActive();
      internals(alice()).cancel(c, internals(c).activeQuery);
      const r = await result;
      expect(r.code).toBe('57014');
      expect(r.ms).toBeLessThan(10_000);
      console.log(`pg cancel: query ended after ${r.ms} ms`);
    });
  });

  it('cancels from psql on SIGINT (Ctrl+C)', async () => {
    const psqlRun = spawnClient('psql', [
      agentConninfo(f, f.people.alice, 'alice', 'orders'),
      '-X',
      '-c',
      'select pg_sleep(30)',
    ]);
    await waitActive();
    psqlRun.child.kill('SIGINT');
    const r = await psqlRun.result;
    expect(r.stderr).toContain('canceling statement due to user request');
    expect(r.ms).toBeLessThan(10_000);
    console.log(`psql cancel: psql exited after ${r.ms} ms`);
  });

  it('cancels with a CancelRequest sent inside TLS, and ignores a wrong key', async () => {
    await withClient(async (c) => {
      const { processID, secretKey } = internals(c);
      const result = sleepQuery(c);
      await waitActive();
      await cancelPlain(f.agent.port, processID, secretKey ^ 1);
      await cancelOverTls(f, f.people.dave, processID ^ 1, secretKey);
      await sleep(300);
      const still = await f.pg.admin(
        "select count(*) from pg_stat_activity where query = 'select pg_sleep(30)' and state = 'active'",
      );
      expect(still.trim()).toBe('1');
      await cancelOverTls(f, f.people.alice, processID, secretKey);
      expect((await result).code).toBe('57014');
    });
  });

  it('cancels through another replica: the key is relayed to its peers, once', async () => {
    // A second agent in front of the same database, as a load balancer's other target.
    const replica = await startTestAgent({
      database: 'orders-pg',
      docs: baseDocs(f.pg.port, f.pg.ca.certPem),
      tls: f.agentTls,
      peers: [`localhost:${f.agent.port}`],
    });
    try {
      await withClient(async (c) => {
        const { processID, secretKey } = internals(c);
        // A relayed cancel is never relayed again: sent to the replica as if from a peer, it does nothing.
        const short = c.query('select pg_sleep(1)');
        await cancelPlain(replica.port, processID, secretKey, StartupCode.PeerCancelRequest);
        await expect(short).resolves.toBeDefined();

        const result = sleepQuery(c);
        await waitActive();
        await cancelPlain(replica.port, processID, secretKey);
        const r = await result;
        expect(r.code).toBe('57014');
        expect(r.ms).toBeLessThan(10_000);
      });
    } finally {
      await replica.stop();
    }
  });

  it("gives each session the server's process id, with a secret of the agent's own", async () => {
    await withClient(async (c) => {
      const backendPid = (await c.query('select pg_backend_pid() as pid')).rows[0].pid;
      expect(internals(c).processID).toBe(backendPid);
    });
  });
});

describe('audit', () => {
  it('records session start and end with identity, duration, bytes and reason', async () => {
    const s = await rawSession(f, f.people.alice, 'bob', 'orders');
    const port = s.tls.localPort;
    s.tls.end(Buffer.from([0x58, 0, 0, 0, 4])); // Terminate
    await s.errorUntilClose();
    const start = await audited('session.start', (e) => e.dbUser === 'bob');
    expect(start[0]).toMatchObject({
      protocol: 'postgres',
      database: 'orders-pg',
      user: 'alice',
      dbName: 'orders',
      backendUser: 'bob',
      identitySource: 'certificate',
      reason: 'allowed by role "dev"',
      // The client's own end of the connection (the agent reads it as the TLS handshake starts).
      clientAddress: `127.0.0.1:${port}`,
    });
    const end = await audited('session.end', (e) => e.sessionId === start[0]!.sessionId);
    expect(end[0]).toMatchObject({ reason: 'client disconnected', bytesFromClient: 5 });
    expect(end[0]!.bytesToClient).toBe(0);
    expect(end[0]!.durationMs).toBeGreaterThanOrEqual(0);
  });
});
