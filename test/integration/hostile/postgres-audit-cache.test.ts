// Hostile: what a PostgreSQL session's audit remembers must never make a line lie. The auditor keeps
// the last Parses' bodies with the text and secrecy it audited them with (a repeat skips decoding and
// redaction), the session keeps the heads of its last Bind events, and the Bind decoder the names of
// the last statements bound (ASCII only). The attacker sends what these are keyed on, nearly: a Parse
// of the same length as an earlier one that differs in its last bytes (and mentions PASSWORD), the
// same Parse bytes again after spec.audit.maxValueLength changed, a statement name of the same byte
// length as another but not ASCII, one name closed and parsed again for other SQL and back; and names
// the server takes for one another (it keeps a name's first 63 bytes, after converting them from
// client_encoding) though the agent reads them apart; and more Parses of one name in flight than the
// audit lists as candidates. Last, password redaction: where the agent's lexer ends the literal after
// PASSWORD later than PostgreSQL does, or takes for a password what is none (a typed literal that a
// function runs), what follows would run unseen (each case runs a DELETE so);
// where it ends it earlier (a literal continued on the next line), the rest of the password is logged.
// Raw wire messages through the real agent to PostgreSQL 15; the real audit file and the server's
// state are read.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../../src/agent/audit.js';
import { decodeErrorFields } from '../../../src/engines/postgres/decoders.js';
import { type Fixture, PASSWORDS, baseDocs, startFixture } from '../postgres/fixture.js';
import { fe, msg } from '../../unit/postgres/factory.js';
import { until } from './audit-support.js';
import { type Session, exchange, queries, withSession } from './postgres-audit-support.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

async function resetTable(): Promise<void> {
  await f.pg.admin(
    'DROP TABLE IF EXISTS c; CREATE TABLE c (id int); ALTER TABLE c OWNER TO alice; INSERT INTO c VALUES (1), (2)',
    'orders',
  );
}
const rows = async () => Number((await f.pg.admin('SELECT count(*) FROM c', 'orders')).trim());
/** Bind of `statement` with text values, Execute, Sync. */
const run = (statement: string, values: string[] = []) => [
  fe.bind(
    '',
    statement,
    [],
    values.map((v) => Buffer.from(v)),
  ),
  fe.execute(''),
  fe.sync(),
];
const shown = (events: AuditEvent[]) => events.map((e) => [e.statement, e.query, e.parameters]);

describe('the Parse, Bind head and statement name caches', () => {
  it('a Parse as long as the last one, differing only in its last bytes, is audited as itself: a password stays out', async () => {
    const plain = 'SELECT $1::text AS xxxxxxxx';
    const secret = 'SELECT $1::text AS password';
    expect(plain.length).toBe(secret.length);
    await withSession(f, async (s) => {
      for (const round of ['1', '2']) {
        expect(await exchange(s, [fe.parse('', plain), ...run('', [`visible-${round}`])])).toEqual([]);
        expect(await exchange(s, [fe.parse('', secret), ...run('', [`pw-sekrit-${round}`])])).toEqual([]);
      }
      expect(shown(await queries(f, s, 4))).toEqual([
        [undefined, plain, ['visible-1']],
        [undefined, secret, ['[redacted]']],
        [undefined, plain, ['visible-2']],
        [undefined, secret, ['[redacted]']],
      ]);
    });
    expect(await readFile(f.agent.auditPath, 'utf8')).not.toContain('pw-sekrit');
  });

  it('the same Parse bytes after spec.audit.maxValueLength changed are cut by the new limit', async () => {
    const sql = `SELECT $1::text AS v, '${'w'.repeat(400)}' AS w`;
    const docs = baseDocs(f.pg.port, f.pg.ca.certPem) as { kind: string; spec: Record<string, unknown> }[];
    try {
      await withSession(f, async (s: Session) => {
        expect(await exchange(s, [fe.parse('', sql), ...run('', ['a'])])).toEqual([]);
        docs.find((d) => d.kind === 'Database')!.spec.audit = { maxValueLength: 300 };
        await f.agent.writeDocs(docs);
        // A simple Query (which the Parse cache never sees) tells when the limit has changed.
        let n = 0;
        await until('the new limit', async () => {
          await exchange(s, [fe.query(sql.replace('$1::text', `'${++n}'`))]);
          return String((await queries(f, s, n + 1)).at(-1)?.query).includes('bytes sha256:');
        });
        expect(await exchange(s, [fe.parse('', sql), ...run('', ['b'])])).toEqual([]);
        const events = await queries(f, s, n + 2);
        expect(events[0]).toMatchObject({ query: sql, parameters: ['a'] });
        expect(events.at(-1)!.parameters).toEqual(['b']);
        expect(String(events.at(-1)!.query)).toMatch(
          new RegExp(
            `^${sql.slice(0, 300).replace(/[$()]/g, '\\$&')}…\\[${sql.length} bytes sha256:[0-9a-f]{64}\\]$`,
          ),
        );
      });
    } finally {
      await f.agent.writeDocs(baseDocs(f.pg.port, f.pg.ca.certPem));
    }
  });

  it('statement names of one byte length, one not ASCII, bound in turn: neither is taken for the other', async () => {
    await resetTable();
    const other = 'ab\u00e9'; // 4 bytes in UTF-8, as 'abcd'
    expect(Buffer.byteLength(other)).toBe(4);
    await withSession(f, async (s) => {
      const prepare = [
        fe.parse('abcd', 'SELECT 1'),
        fe.parse(other, 'DELETE FROM c WHERE id = $1'),
        fe.sync(),
      ];
      expect(await exchange(s, prepare)).toEqual([]);
      const binds = [...run('abcd'), ...run(other, ['1']), ...run('abcd'), ...run(other, ['2'])];
      expect(await exchange(s, binds, 4)).toEqual([]);
      expect(await rows()).toBe(0);
      // A name not ASCII is never resolved (see the names PostgreSQL aliases, below).
      expect(shown(await queries(f, s, 4))).toEqual([
        ['abcd', 'SELECT 1', []],
        [other, null, ['1']],
        ['abcd', 'SELECT 1', []],
        [other, null, ['2']],
      ]);
    });
  });

  it('one name closed and parsed again for other SQL, then for the first SQL again: each Bind says what ran', async () => {
    await resetTable();
    const reparse = (sql: string) => [fe.close('S', 's1'), fe.parse('s1', sql), fe.sync()];
    await withSession(f, async (s) => {
      expect(await exchange(s, [fe.parse('s1', 'SELECT 1'), ...run('s1')])).toEqual([]);
      // The Parse answered before its Bind is sent: across a Sync the audit would only list the candidates.
      for (const sql of ['DELETE FROM c WHERE id = 1', 'SELECT 1', 'DELETE FROM c WHERE id = 1']) {
        expect(await exchange(s, reparse(sql))).toEqual([]);
        expect(await exchange(s, run('s1'))).toEqual([]);
      }
      expect(await rows()).toBe(1);
      expect(shown(await queries(f, s, 4))).toEqual([
        ['s1', 'SELECT 1', []],
        ['s1', 'DELETE FROM c WHERE id = 1', []],
        ['s1', 'SELECT 1', []],
        ['s1', 'DELETE FROM c WHERE id = 1', []],
      ]);
    });
  });

  it('a name past 63 bytes closed and parsed again under another spelling: the Bind does not claim the old SQL', async () => {
    await resetTable();
    const stem = 'n'.repeat(63);
    await withSession(f, async (s) => {
      expect(await exchange(s, [fe.parse(`${stem}X`, 'SELECT 1'), fe.sync()])).toEqual([]);
      // The server closes and parses `stem` both times: names are keyed by their first 63 bytes.
      const respell = [fe.close('S', `${stem}Y`), fe.parse(`${stem}Y`, 'DELETE FROM c'), fe.sync()];
      expect(await exchange(s, respell)).toEqual([]);
      expect(await exchange(s, run(`${stem}X`))).toEqual([]);
      expect(await rows()).toBe(0);
      const [bind] = await queries(f, s, 1);
      expect(bind).toMatchObject({ statement: `${stem}X`, query: null });
      expect(bind!.queryUnknown).toMatch(/first 63 bytes/);
    });
  });

  it('names in client_encoding LATIN1 that the agent would decode alike: the Bind does not claim the other SQL', async () => {
    await resetTable();
    const latin1 = (s: string) => Buffer.from(`${s}\0`, 'latin1');
    const parse = (name: string, sql: string) => msg('P', latin1(name), latin1(sql), Buffer.from([0, 0]));
    const bind = (name: string) => msg('B', latin1(''), latin1(name), Buffer.alloc(6));
    await withSession(f, async (s) => {
      expect(await exchange(s, [fe.query('SET client_encoding = LATIN1')])).toEqual([]);
      // Two names on the server (sÿ, sþ); invalid UTF-8 both, one string (s\ufffd) each to a decoder.
      const prepare = [parse('s\xff', 'DELETE FROM c'), parse('s\xfe', 'SELECT 1'), fe.sync()];
      expect(await exchange(s, prepare)).toEqual([]);
      expect(await exchange(s, [bind('s\xff'), fe.execute(''), fe.sync()])).toEqual([]);
      expect(await rows()).toBe(0);
      const events = await queries(f, s, 2);
      expect(events[1]).toMatchObject({ query: null });
      expect(events[1]!.queryUnknown).toMatch(/not ASCII/);
    });
  });

  it('ten Parses of one name in flight, the last one what runs: the candidates listed say some are left out', async () => {
    await resetTable();
    await withSession(f, async (s) => {
      const rounds = ['1', '2', '3', '4', '5', '6', '7', '8', '9', 'password'].flatMap((v) => [
        fe.close('S', 's1'),
        fe.parse('s1', v === 'password' ? "DELETE FROM c WHERE $1::text <> 'password'" : `SELECT ${v}`),
        fe.sync(),
      ]);
      expect(await exchange(s, [...rounds, ...run('s1', ['pw-sekrit'])], 11)).toEqual([]);
      expect(await rows()).toBe(0);
      const [bind] = await queries(f, s, 1);
      expect(bind).toMatchObject({ query: null, parameters: ['[redacted]'] });
      expect(bind!.possibleQueries).toHaveLength(9);
      expect((bind!.possibleQueries as string[]).at(-1)).toBe('[2 more not listed]');
    });
  });
});

describe('password redaction', () => {
  const tail = "'; DELETE FROM c; --'";

  it.each([
    [
      'standard_conforming_strings off',
      'SET standard_conforming_strings = off',
      `SELECT 'a\\' PASSWORD ${tail}`,
    ],
    ['a carriage return ending a -- comment', 'SELECT 1', `SELECT 1 -- x\r, 'abc\n PASSWORD ${tail}`],
    [
      'a dollar-quote tag of 70 letters',
      'SELECT 1',
      `SELECT $${'a'.repeat(70)}$ PASSWORD '$${'a'.repeat(70)}$; DELETE FROM c; --'`,
    ],
    [
      // A typed literal of a domain named password: pg_temp's, which any user may create.
      'a domain named password',
      'CREATE DOMAIN pg_temp.password AS text; ' +
        'CREATE FUNCTION pg_temp.run(q text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE q; END $$',
      "SELECT pg_temp.run(password 'DELETE FROM c')",
    ],
  ])('%s: the DELETE that runs is in the audit', async (_name, setup, sql) => {
    await resetTable();
    await withSession(f, async (s) => {
      expect(await exchange(s, [fe.query(setup)])).toEqual([]);
      expect(await exchange(s, [fe.query(sql)])).toEqual([]);
      expect(await rows()).toBe(0);
      const [, event] = await queries(f, s, 2);
      expect(event!.query).toContain('DELETE FROM c');
    });
  });

  it('a password in pieces on lines of their own, which PostgreSQL joins into one literal: no piece is audited', async () => {
    // alice's own password, in three pieces: that the next session logs in shows the server joined them.
    const [a, b, c] = ['alice-s', 'cram-', 'pw'];
    expect(a + b + c).toBe(PASSWORDS.alice);
    await withSession(f, async (s) => {
      const sql = `ALTER ROLE alice PASSWORD '${a}'\n'${b}' -- ${c}\n\t'${c}'; SELECT 'after'`;
      expect(await exchange(s, [fe.query(sql)])).toEqual([]);
      const [event] = await queries(f, s, 1);
      expect(event!.query).toBe(`ALTER ROLE alice PASSWORD [redacted]; SELECT 'after'`);
    });
    await withSession(f, async (s) => expect(await exchange(s, [fe.query('SELECT 1')])).toEqual([]));
    const text = await readFile(f.agent.auditPath, 'utf8');
    for (const piece of [a, b, c]) expect(text).not.toContain(`'${piece}'`);
  });

  it("a migration's DO block that creates a role with a password: the role is made, the password is not audited", async () => {
    await f.pg.admin('DROP ROLE IF EXISTS migrated');
    await f.pg.admin('ALTER ROLE alice CREATEROLE');
    try {
      await withSession(f, async (s) => {
        const sql =
          "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'migrated') THEN " +
          "CREATE ROLE migrated LOGIN PASSWORD 'migration-secret'; END IF; END $$";
        expect(await exchange(s, [fe.query(sql)])).toEqual([]);
        const [event] = await queries(f, s, 1);
        expect(event!.query).toContain('CREATE ROLE migrated LOGIN PASSWORD [redacted]; END IF; END $$');
      });
      expect((await f.pg.admin("SELECT count(*) FROM pg_roles WHERE rolname = 'migrated'")).trim()).toBe('1');
      expect(await readFile(f.agent.auditPath, 'utf8')).not.toContain('migration-secret');
    } finally {
      await f.pg.admin('DROP ROLE IF EXISTS migrated; ALTER ROLE alice NOCREATEROLE');
    }
  });

  it('client_encoding SJIS, a backslash after a character not ASCII: the statement is refused, nothing runs', async () => {
    await resetTable();
    try {
      await withSession(f, async (s) => {
        expect(await exchange(s, [fe.query('SET client_encoding = SJIS')])).toEqual([]);
        // 'Ł' is C5 81 in UTF-8; SJIS reads 81 5C as one character, so the literal ends at the next quote.
        s.tls.write(msg('Q', Buffer.from(`ALTER ROLE alice PASSWORD E'x\u0141\\${tail}\0`)));
        let m = await s.next();
        while (m && m.code !== 0x45 && m.code !== 0x5a) m = await s.next();
        expect(m?.code).toBe(0x45); // not ReadyForQuery: the statement did not run
        const error = decodeErrorFields(m!.body);
        expect(error).toMatchObject({ severity: 'FATAL', code: '08P01' });
        expect(error.message).toContain('cannot tell where the password literal of this statement ends');
        expect(await s.next()).toBeUndefined();
        await sleep(200);
        expect((await queries(f, s, 1)).map((e) => e.query)).toEqual(['SET client_encoding = SJIS']);
      });
      expect(await rows()).toBe(2);
    } finally {
      await f.pg.admin(`ALTER ROLE alice PASSWORD '${PASSWORDS.alice}'`);
    }
  });
});
