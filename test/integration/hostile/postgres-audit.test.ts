// The attacker who may log in and wants the audit log to lie: statements run through paths the audit
// does not see (FunctionCall), prepared statement names that mean something else than the audit says
// (a refused duplicate Parse, errors inside pipelined batches, SQL PREPARE/DEALLOCATE/DISCARD), secrets
// written into the log (role passwords), and values too long to read. Played with raw wire messages
// against the real PostgreSQL 15 through the real agent; every check reads the real audit file.
import { createHash } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../../src/agent/audit.js';
import { type Fixture, agentConninfo, baseDocs, runClient, startFixture } from '../postgres/fixture.js';
import { fe } from '../../unit/postgres/factory.js';
import {
  type Session,
  exchange,
  queries as auditQueries,
  withSession as sessionOf,
} from './postgres-audit-support.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
  await f.pg.admin('ALTER ROLE alice CREATEROLE');
});
afterAll(async () => {
  await f?.stop();
});

const queries = (s: Session, count: number) => auditQueries(f, s, count);
const withSession = <T>(fn: (s: Session) => Promise<T>) => sessionOf(f, fn);

async function resetTable(): Promise<void> {
  await f.pg.admin(
    'DROP TABLE IF EXISTS t; CREATE TABLE t (id int); ALTER TABLE t OWNER TO alice; ' +
      'INSERT INTO t VALUES (1), (2)',
    'orders',
  );
}
const rows = async () => Number((await f.pg.admin('SELECT count(*) FROM t', 'orders')).trim());
const run = (statement: string) => [fe.bind('', statement, [], []), fe.execute(''), fe.sync()];

describe('FunctionCall', () => {
  it('is audited with the function OID and its arguments', async () => {
    const oid = Number((await f.pg.admin("SELECT 'int4pl'::regproc::oid")).trim());
    await withSession(async (s) => {
      const call = fe.functionCall(oid, [0], [Buffer.from('2'), Buffer.from('40')]);
      expect(await exchange(s, [call])).toEqual([]);
      const events = await queries(s, 1);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ function: oid, parameters: ['2', '40'] });
    });
  });
});

describe('prepared statements', () => {
  it('a refused duplicate Parse does not rename the statement that runs', async () => {
    await resetTable();
    await withSession(async (s) => {
      expect(await exchange(s, [fe.parse('s1', 'DELETE FROM t'), fe.sync()])).toEqual([]);
      const dup = await exchange(s, [fe.parse('s1', 'SELECT 1'), fe.sync()]);
      expect(dup[0]).toContain('already exists');
      expect(await exchange(s, run('s1'))).toEqual([]);
      expect(await rows()).toBe(0);
      const events = await queries(s, 1);
      expect(events).toEqual([expect.objectContaining({ statement: 's1', query: 'DELETE FROM t' })]);
    });
  });

  it('pipelined: a Parse the server has not answered yet is not taken for the statement', async () => {
    await resetTable();
    await withSession(async (s) => {
      // The first Parse fails (syntax), the second is accepted: the Bind runs the DELETE.
      const errors = await exchange(
        s,
        [fe.parse('s1', 'DELET FROM t'), fe.sync(), fe.parse('s1', 'DELETE FROM t'), fe.sync(), ...run('s1')],
        3,
      );
      expect(errors).toHaveLength(1);
      expect(await rows()).toBe(0);
      const [bind] = await queries(s, 1);
      expect(bind).toMatchObject({ statement: 's1', query: null });
      expect(bind!.queryUnknown).toEqual(expect.any(String));
      expect(bind!.possibleQueries).toContain('DELETE FROM t');
    });
  });

  it('Parses skipped after an error in their batch are not accepted', async () => {
    await resetTable();
    await withSession(async (s) => {
      // The Bind fails, so the server skips the Parse after it until Sync.
      const skipped = [fe.bind('', 'nosuch', [], []), fe.parse('s2', 'SELECT 1'), fe.sync()];
      expect(await exchange(s, skipped)).toHaveLength(1);
      expect(await exchange(s, [fe.parse('s2', 'DELETE FROM t'), fe.sync()])).toEqual([]);
      expect(await exchange(s, run('s2'))).toEqual([]);
      expect(await rows()).toBe(0);
      const events = await queries(s, 3);
      expect(events.at(-1)).toMatchObject({ statement: 's2', query: 'DELETE FROM t' });
    });
  });

  it('the unnamed statement: the same batch names it; after a simple Query it is unknown', async () => {
    await resetTable();
    await withSession(async (s) => {
      expect(await exchange(s, [fe.parse('', 'DELETE FROM t WHERE id = 1'), ...run('')])).toEqual([]);
      expect(await exchange(s, [fe.query('SELECT 1')])).toEqual([]);
      expect((await exchange(s, run('')))[0]).toContain('unnamed prepared statement does not exist');
      const events = await queries(s, 3);
      expect(events[0]).toMatchObject({ query: 'DELETE FROM t WHERE id = 1' });
      expect(events[2]).toMatchObject({ query: null, queryUnknown: expect.any(String) });
    });
  });

  it('a Parse repeating the bytes of the last one but for its name runs, and is audited, by its own name', async () => {
    await resetTable();
    await f.pg.admin('INSERT INTO t VALUES (3)', 'orders');
    const sql = 'DELETE FROM t WHERE id = $1';
    const runWith = (statement: string, id: string) => [
      fe.bind('', statement, [], [Buffer.from(id)]),
      fe.execute(''),
      fe.sync(),
    ];
    await withSession(async (s) => {
      expect(await exchange(s, [fe.parse('', sql), ...runWith('', '1')])).toEqual([]);
      expect(await exchange(s, [fe.parse('s5', sql), fe.sync()])).toEqual([]);
      expect(await exchange(s, runWith('s5', '3'))).toEqual([]);
      expect(await exchange(s, [fe.parse('', sql), ...runWith('', '2')])).toEqual([]);
      expect(await rows()).toBe(0);
      const events = await queries(s, 3);
      expect(events.map((e) => [e.statement, e.query, e.parameters])).toEqual([
        [undefined, sql, ['1']],
        ['s5', sql, ['3']],
        [undefined, sql, ['2']],
      ]);
    });
  });

  it('Close frees the name; the next accepted Parse is what runs', async () => {
    await resetTable();
    await withSession(async (s) => {
      await exchange(s, [fe.parse('s3', 'SELECT 1'), fe.sync()]);
      await exchange(s, [fe.close('S', 's3'), fe.parse('s3', 'DELETE FROM t'), fe.sync()]);
      expect(await exchange(s, run('s3'))).toEqual([]);
      expect(await rows()).toBe(0);
      expect((await queries(s, 1))[0]).toMatchObject({ statement: 's3', query: 'DELETE FROM t' });
    });
  });

  it.each([
    ['DEALLOCATE', 'DEALLOCATE s4; PREPARE s4 AS DELETE FROM t'],
    ['DISCARD ALL', 'DISCARD ALL'],
    // Past the 1 MiB of a message the agent reads: the audit shows its head and hash only.
    [
      'DEALLOCATE past 1 MiB of comment',
      `/* ${'x'.repeat(1_100_000)} */ DEALLOCATE s4; PREPARE s4 AS DELETE FROM t`,
    ],
  ])('%s in SQL makes the agent forget what it knew', async (_, sql) => {
    await resetTable();
    await withSession(async (s) => {
      await exchange(s, [fe.parse('s4', 'SELECT 1'), fe.sync()]);
      await exchange(s, [fe.query(sql)]);
      await exchange(s, run('s4'));
      const events = await queries(s, 2);
      const bind = events.find((e) => e.statement === 's4');
      expect(bind).toMatchObject({ query: null, queryUnknown: expect.any(String) });
    });
  });

  it('a Parse past 1 MiB, its DEALLOCATE and PREPARE unread, makes the agent forget what it knew', async () => {
    await resetTable();
    const pad = `/* ${'x'.repeat(1_100_000)} */ `;
    await withSession(async (s) => {
      await exchange(s, [fe.parse('s7', 'SELECT 1'), fe.sync()]);
      expect(await exchange(s, [fe.parse('', pad + 'DEALLOCATE s7'), ...run('')])).toEqual([]);
      await exchange(s, [fe.parse('', pad + 'PREPARE s7 AS DELETE FROM t'), ...run('')]);
      expect(await exchange(s, run('s7'))).toEqual([]);
      expect(await rows()).toBe(0);
      const bind = (await queries(s, 3)).find((e) => e.statement === 's7');
      expect(bind).toMatchObject({ query: null, queryUnknown: expect.any(String) });
    });
  });

  it('follows COPY FROM STDIN in the extended protocol, whose pipelined Sync the server ignores', async () => {
    await resetTable();
    await withSession(async (s) => {
      s.tls.write(Buffer.concat([fe.parse('', 'COPY t FROM STDIN'), ...run('')]));
      for (let m = await s.next(); m?.code !== 0x47; m = await s.next()) expect(m).toBeDefined(); // CopyInResponse
      expect(await exchange(s, [fe.copyData(Buffer.from('3\n')), fe.copyDone(), fe.sync()])).toEqual([]);
      expect(await exchange(s, [fe.parse('s6', 'DELETE FROM t'), fe.sync()])).toEqual([]);
      expect(await exchange(s, run('s6'))).toEqual([]);
      expect(await rows()).toBe(0);
      expect((await queries(s, 2)).at(-1)).toMatchObject({ statement: 's6', query: 'DELETE FROM t' });
    });
  });

  it('names every statement of a real pipelining client (pgbench -M prepared, \\startpipeline)', async () => {
    const conn = agentConninfo(f, f.people.alice, 'alice', 'orders');
    expect((await runClient('pgbench', ['-i', '-s', '1', '-q', conn])).code).toBe(0);
    const script = path.join(f.dir, 'pipeline-prepared.sql');
    const selects = Array.from(
      { length: 5 },
      (_, i) => `SELECT abalance FROM pgbench_accounts WHERE aid = ${i + 1};`,
    );
    await writeFile(script, ['\\startpipeline', ...selects, '\\endpipeline', ''].join('\n'));
    const run = await runClient('pgbench', [
      '-n',
      '-M',
      'prepared',
      '-c',
      '2',
      '-t',
      '20',
      '-f',
      script,
      conn,
    ]);
    expect(run.code, run.stderr).toBe(0);
    await sleep(200);
    const binds = (await f.agent.auditEvents()).filter(
      (e) =>
        e.type === 'query' && String(e.query ?? e.possibleQueries).includes('pgbench_accounts WHERE aid'),
    );
    expect(binds).toHaveLength(2 * 20 * 5);
    expect(binds.filter((e) => e.query === null)).toEqual([]);
  });

  it('refuses a simple Query sent after extended messages without a Sync (the session ends)', async () => {
    await withSession(async (s) => {
      s.tls.write(Buffer.concat([fe.parse('s5', 'SELECT 1'), fe.query('SELECT 2')]));
      const error = await s.errorUntilClose();
      expect(error?.message).toContain('Sync');
    });
  });
});

describe('random pipelined batches (differential: what ran against what the audit says)', () => {
  // Statements return their tag and the Bind's unique parameter, so each row the server sends back is
  // matched to the Bind event that carried the same parameter. SELEC is a syntax error (a refused Parse).
  const texts = [
    "SELECT 'A', $1::text",
    "SELECT 'B', $1::text",
    "SELEC 'C', $1::text",
    "SELECT 'D', $1::text",
  ];
  const names = ['s1', 's2', ''];
  const rewriting = ['SELECT 1', 'DEALLOCATE ALL', "PREPARE s1 AS SELECT 'P', $1::text", 'DEALLOCATE s2'];

  it.each([
    ['only protocol messages and plain SQL', ['SELECT 1'], 0.8],
    ['SQL that prepares and deallocates too', rewriting, 0.1],
  ])('never names a statement other than the one whose row came back: %s', async (_, simple, share) => {
    let seed = 20_261_206;
    /** mulberry32: small, seeded, and random in its low bits too. */
    const rand = (n: number) => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) % n;
    };
    let id = 0;
    await withSession(async (s) => {
      const ran: [string, string][] = [];
      for (let round = 0; round < 300; round++) {
        const batch: Buffer[] = [];
        let ready = 0;
        let open = false;
        for (let i = 0, n = 2 + rand(10); i < n; i++) {
          const op = rand(10);
          const name = names[rand(names.length)]!;
          if (op < 3) batch.push(fe.parse(name, texts[rand(texts.length)]!));
          else if (op < 6) batch.push(fe.bind('', name, [], [Buffer.from(String(++id))]), fe.execute(''));
          else if (op === 6) batch.push(fe.close('S', name));
          else if (op === 7)
            batch.push(fe.bind('', 'zz', [], [])); // an error: skip until Sync
          else if (op === 8) batch.push(fe.sync());
          else {
            if (open) batch.push(fe.sync()); // a Query needs a Sync after extended messages
            if (open) ready++;
            batch.push(fe.query(simple[rand(simple.length)]!));
          }
          open = op < 8;
          if (op >= 8) ready++;
        }
        batch.push(fe.sync());
        s.tls.write(Buffer.concat(batch));
        for (let z = 0; z <= ready;) {
          const m = await s.next();
          if (!m) throw new Error(`the agent ended the session in round ${round}`);
          if (m.code === 0x5a) z++;
          if (m.code === 0x44 && m.body.readInt16BE(0) === 2) {
            const a = m.body.readInt32BE(2);
            const tag = m.body.toString('utf8', 6, 6 + a);
            ran.push([tag, m.body.toString('utf8', 10 + a)]);
          }
        }
      }
      expect(ran.length).toBeGreaterThan(40);
      // Every Bind with a parameter is audited: wait until the sink has written them all.
      let byParam = new Map<string | undefined, AuditEvent>();
      for (let i = 0; i < 30 && ran.some(([, param]) => !byParam.has(param)); i++) {
        await sleep(100);
        const events = await queries(s, 1);
        byParam = new Map(events.map((e) => [(e.parameters as string[] | undefined)?.[0], e]));
      }
      let named = 0;
      for (const [tag, param] of ran) {
        const e = byParam.get(param)!;
        if (e.query !== null) {
          named++;
          expect(e.query, `Bind ${param}`).toContain(`'${tag}'`);
        } else if (tag !== 'P') {
          expect(e.possibleQueries, `Bind ${param} ran ${tag}: ${JSON.stringify(e)}`).toEqual(
            expect.arrayContaining([expect.stringContaining(`'${tag}'`)]),
          );
        }
      }
      const reasons = ran.map(([, p]) => String(byParam.get(p)!.queryUnknown ?? 'named'));
      const counts = [...new Set(reasons)].map((r) => `${reasons.filter((x) => x === r).length}× ${r}`);
      console.log(`differential: ${ran.length} rows back; their Binds: ${counts.join('; ')}`);
      expect(named).toBeGreaterThan(ran.length * share);
    });
  });
});

describe('secrets and long values', () => {
  const secrets = [
    'sekrit-one',
    'sekrit-two',
    'sekrit-three',
    'sekrit-four',
    'sekrit-five',
    'sekrit-six',
    'sekrit-seven',
  ];

  it('redacts role passwords in queries and Bind parameters', async () => {
    await withSession(async (s) => {
      await exchange(s, [
        fe.query(
          `SELECT 1; cReAtE rOlE r1 PASSWORD '${secrets[0]}'; ` +
            `ALTER USER r1 WITH ENCRYPTED PASSWORD $tag$${secrets[1]}$tag$ VALID UNTIL 'infinity'`,
        ),
      ]);
      await exchange(s, [fe.query(`alter role r1 password E'${secrets[2]}\\'x'`)]);
      await exchange(s, [fe.parse('', `CREATE USER r2 PASSWORD '${secrets[3]}'`), ...run('')]);
      // PASSWORD takes no parameters: the server refuses this Parse, but the Bind is audited all the same.
      await exchange(s, [
        fe.parse('', 'ALTER ROLE r1 PASSWORD $1'),
        fe.bind('', '', [], [Buffer.from(secrets[4]!)]),
        fe.sync(),
      ]);
      // Plain ASCII without " or \, which the audit copies as bytes unless a notable word is in it, in any case.
      await exchange(s, [fe.query(`alter role r1 pAsSwOrD '${secrets[5]}'`)]);
      // A statement that mentions the word, with a value the audit would otherwise copy from the Bind.
      await exchange(s, [
        fe.parse('pw', 'SELECT $1::text AS PassWord'),
        fe.bind('', 'pw', [], [Buffer.from(secrets[6]!)]),
        fe.execute(''),
        fe.sync(),
      ]);
      const events = await queries(s, 6);
      expect(events).toHaveLength(6);
      const text = await readFile(f.agent.auditPath, 'utf8');
      for (const secret of secrets) expect(text).not.toContain(secret);
      expect(events[0]!.query).toContain('PASSWORD [redacted]');
      expect(events[0]!.query).toContain("VALID UNTIL 'infinity'");
      expect(events[3]!.parameters).toEqual(['[redacted]']);
      expect(events[4]!.query).toBe('alter role r1 pAsSwOrD [redacted]');
      expect(events[5]).toMatchObject({ statement: 'pw', parameters: ['[redacted]'] });
      expect(
        Number((await f.pg.admin("SELECT count(*) FROM pg_roles WHERE rolname IN ('r1','r2')")).trim()),
      ).toBe(2);
    });
  });

  it('cuts values past the limit (default 4096) with the SHA-256 of the full text', async () => {
    const long = `SELECT '${'v'.repeat(6000)}'`;
    const param = 'p'.repeat(5000);
    await withSession(async (s) => {
      await exchange(s, [fe.query(long)]);
      await exchange(s, [
        fe.parse('', 'SELECT $1::text'),
        fe.bind('', '', [], [Buffer.from(param)]),
        fe.execute(''),
        fe.sync(),
      ]);
      const [q, b] = await queries(s, 2);
      const sha = (v: string) => createHash('sha256').update(v).digest('hex');
      expect(q!.query).toBe(`${long.slice(0, 4096)}…[${long.length} bytes sha256:${sha(long)}]`);
      expect(b!.parameters).toEqual([`${param.slice(0, 4096)}…[5000 bytes sha256:${sha(param)}]`]);
    });
  });

  it('takes the limit from the Database spec (spec.audit.maxValueLength)', async () => {
    const docs = baseDocs(f.pg.port, f.pg.ca.certPem) as { kind: string; spec: Record<string, unknown> }[];
    docs.find((d) => d.kind === 'Database')!.spec.audit = { maxValueLength: 300 };
    await f.agent.writeDocs(docs);
    try {
      await sleep(2_000);
      await withSession(async (s) => {
        const long = `SELECT '${'w'.repeat(400)}'`;
        await exchange(s, [fe.query(long)]);
        const [q] = await queries(s, 1);
        expect(String(q!.query)).toMatch(
          new RegExp(`^SELECT 'w{292}…\\[${long.length} bytes sha256:[0-9a-f]{64}\\]$`),
        );
      });
    } finally {
      await f.agent.writeDocs(baseDocs(f.pg.port, f.pg.ca.certPem));
      await sleep(2_000);
    }
  });
});
