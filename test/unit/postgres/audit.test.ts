// Query audit events from the messages the relay hands over, in both directions.
import { describe, expect, it } from 'vitest';
import { cutMark } from '../../../src/agent/audit.js';
import { QueryAuditor, formatParam } from '../../../src/engines/postgres/audit.js';
import { redactPasswords } from '../../../src/engines/postgres/redact.js';
import { fe } from './factory.js';

/** A client message, or a server answer by its code ('1', '3', 'Z', 'E', 'G'). */
type Step = Buffer | string;

function audit(steps: Step[], cut?: number, max = 256) {
  const events: Record<string, unknown>[] = [];
  const auditor = new QueryAuditor(
    (e) => events.push(JSON.parse(JSON.stringify(e))),
    () => max,
  );
  for (const m of steps) {
    if (typeof m === 'string') {
      auditor.onServerMessage(m.charCodeAt(0));
      continue;
    }
    const body = m.subarray(5);
    auditor.onMessage(m[0]!, cut === undefined ? body : body.subarray(0, cut), body.length);
  }
  return events;
}

const run = (statement: string, ...values: Buffer[]) => [
  fe.bind('', statement, [], values),
  fe.execute(''),
  fe.sync(),
];

describe('QueryAuditor', () => {
  it('audits a simple Query by its text', () => {
    expect(audit([fe.query('select 1')])).toEqual([{ query: 'select 1' }]);
  });

  it('audits each Bind with the statement text the server accepted, and its parameters', () => {
    const events = audit([
      fe.parse('', 'select $1::int'),
      fe.bind('', '', [], [Buffer.from('7')]),
      fe.sync(),
      ...['1', '2', 'Z'],
      fe.parse('named', 'select $1::bytea, $2'),
      fe.sync(),
      ...['1', 'Z'],
      fe.bind('', 'named', [1, 0], [Buffer.from([0xde, 0xad]), null]),
      fe.bind('', 'named', [1, 0], [Buffer.from([0xbe]), Buffer.from('x')]),
    ]);
    expect(events).toEqual([
      { query: 'select $1::int', parameters: ['7'] },
      { query: 'select $1::bytea, $2', statement: 'named', parameters: ['\\xdead', null] },
      { query: 'select $1::bytea, $2', statement: 'named', parameters: ['\\xbe', 'x'] },
    ]);
  });

  it('keeps the accepted text when a duplicate Parse of the name is refused', () => {
    const events = audit([
      fe.parse('s1', 'DELETE FROM t'),
      fe.sync(),
      ...['1', 'Z'],
      fe.parse('s1', 'SELECT 1'),
      fe.sync(),
      ...['E', 'Z'],
      ...run('s1'),
    ]);
    expect(events).toEqual([{ query: 'DELETE FROM t', statement: 's1', parameters: [] }]);
  });

  it('lists the possible texts while Parses of the name across a Sync are unanswered', () => {
    const events = audit([
      fe.parse('s1', 'SELEC 1'),
      fe.sync(),
      fe.parse('s1', 'DELETE FROM t'),
      fe.sync(),
      ...run('s1'),
    ]);
    expect(events).toEqual([
      {
        query: null,
        statement: 's1',
        queryUnknown: expect.stringContaining('not yet answered'),
        possibleQueries: ['SELEC 1', 'DELETE FROM t'],
        parameters: [],
      },
    ]);
  });

  it('does not accept Parses the server skipped after an error, up to Sync', () => {
    const events = audit([
      fe.bind('', 'nosuch', [], []),
      fe.parse('s2', 'SELECT 1'),
      fe.sync(),
      ...['E', 'Z'],
      fe.parse('s2', 'DELETE FROM t'),
      fe.sync(),
      ...['1', 'Z'],
      ...run('s2'),
    ]);
    expect(events.at(-1)).toMatchObject({ query: 'DELETE FROM t', statement: 's2' });
  });

  it('skips client messages after an error until the client sends Sync', () => {
    const events = audit([
      fe.bind('', 'nosuch', [], []),
      'E',
      fe.parse('s3', 'SELECT 1'), // sent after the error: skipped
      fe.sync(),
      'Z',
      fe.parse('s3', 'DELETE FROM t'),
      fe.sync(),
      ...['1', 'Z'],
      ...run('s3'),
    ]);
    expect(events.at(-1)).toMatchObject({ query: 'DELETE FROM t', statement: 's3' });
  });

  it('forgets the unnamed statement after a simple Query, and names closed ones unknown', () => {
    const events = audit([
      fe.parse('', 'select 1'),
      fe.sync(),
      ...['1', 'Z'],
      fe.query('select 2'),
      'Z',
      ...run(''),
      ...['E', 'Z'],
      fe.parse('s', 'select 3'),
      fe.sync(),
      ...['1', 'Z'],
      fe.close('S', 's'),
      fe.sync(),
      ...['3', 'Z'],
      ...run('s'),
    ]);
    expect(events[1]).toMatchObject({ query: null, queryUnknown: expect.any(String) });
    expect(events[2]).toMatchObject({ query: null, statement: 's', queryUnknown: expect.any(String) });
  });

  it('makes known statements doubtful after SQL that may prepare or deallocate', () => {
    for (const sql of ['DEALLOCATE s', 'discard all', 'PREPARE s AS select 1']) {
      const events = audit([
        fe.parse('s', 'select 3'),
        fe.sync(),
        ...['1', 'Z'],
        fe.query(sql),
        'Z',
        ...run('s'),
      ]);
      expect(events[1]).toMatchObject({ query: null, possibleQueries: ['select 3'] });
    }
    const viaBind = audit([
      fe.parse('s', 'select 3'),
      fe.parse('d', 'DEALLOCATE s'),
      fe.sync(),
      ...['1', '1', 'Z'],
      ...run('d'),
      ...run('s'),
    ]);
    expect(viaBind[1]).toMatchObject({ query: null, statement: 's' });
  });

  it('follows COPY FROM STDIN, whose Sync messages the server ignores', () => {
    const events = audit([
      fe.parse('', 'COPY t FROM STDIN'),
      ...run(''),
      ...['1', '2', 'G'],
      fe.copyData(Buffer.from('1\n')),
      fe.copyDone(),
      fe.sync(),
      'Z',
      fe.parse('s', 'select 4'),
      fe.sync(),
      ...['1', 'Z'],
      ...run('s'),
    ]);
    expect(events.at(-1)).toMatchObject({ query: 'select 4', statement: 's' });
  });

  it('refuses a simple Query after extended messages without Sync, and answers it cannot match', () => {
    expect(() => audit([fe.parse('s', 'select 1'), fe.query('select 2')])).toThrow(/without a Sync/);
    expect(() => audit([fe.sync(), '1'])).toThrow(/cannot tell which prepared statements/);
  });

  it('bounds the statement text it holds: unanswered Parses end the session, accepted ones are evicted', () => {
    const long = (i: number) => `select ${i}, '${'v'.repeat(4000)}'`;
    const unanswered = Array.from({ length: 1100 }, (_, i) => fe.parse(`p${i}`, long(i)));
    expect(() => audit(unanswered, undefined, 4096)).toThrow(/more than 4194304 characters/);
    const accepted = Array.from({ length: 1100 }, (_, i) => [
      fe.parse(`p${i}`, long(i)),
      fe.sync(),
      '1',
      'Z',
    ]).flat();
    const events = audit([...accepted, ...run('p0'), ...run('p1099')], undefined, 4096);
    expect(events[0]).toMatchObject({ statement: 'p0', query: null });
    expect(events[1]).toMatchObject({ statement: 'p1099', query: long(1099) });
  });

  it('audits a FunctionCall with its OID and arguments', () => {
    expect(audit([fe.functionCall(177, [0], [Buffer.from('2'), null])])).toEqual([
      { function: 177, parameters: ['2', null] },
    ]);
  });

  it('marks statements longer than the capture as truncated, with their full size', () => {
    const long = 'select ' + 'x'.repeat(500);
    expect(audit([fe.query(long)], 100)).toEqual([
      { query: long.slice(0, 100), truncated: true, messageBytes: long.length + 1 },
    ]);
    const events = audit([fe.parse('big', long), fe.sync(), '1', 'Z', fe.bind('', 'big', [], [])], 100);
    expect(events[0]).toMatchObject({ statement: 'big', parameters: [] });
    expect(String(events[0]!.query)).toMatch(/^select x+…\[truncated\]$/);
  });

  it('redacts passwords, and the parameters of statements that mention one', () => {
    const events = audit([
      fe.query("ALTER ROLE a PASSWORD 'x1'"),
      'Z',
      fe.parse('', 'ALTER ROLE a PASSWORD $1'),
      fe.bind('', '', [], [Buffer.from('x2')]),
    ]);
    expect(events).toEqual([
      { query: 'ALTER ROLE a PASSWORD [redacted]' },
      { query: 'ALTER ROLE a PASSWORD $1', parameters: ['[redacted]'] },
    ]);
  });

  it('audits a Parse sent again with the same text by the limit in force, and a changed one by its own text', () => {
    const events: Record<string, unknown>[] = [];
    let max = 256;
    const auditor = new QueryAuditor(
      (e) => events.push(JSON.parse(JSON.stringify(e))),
      () => max,
    );
    const send = (m: Buffer) => auditor.onMessage(m[0]!, m.subarray(5), m.length - 5);
    const query = (sql: string) => {
      for (const m of [fe.parse('', sql), fe.bind('', '', [], [Buffer.from('7')]), fe.sync()]) send(m);
      for (const code of '12Z') auditor.onServerMessage(code.charCodeAt(0));
    };
    const long = `select ${'x'.repeat(300)} where a = $1`;
    query(long);
    query(long);
    max = 10;
    query(long);
    max = 256;
    query("ALTER ROLE a PASSWORD 'x' -- $1");
    query("ALTER ROLE a PASSWORD 'x' -- $1");
    expect(events.map((e) => [String(e.query).slice(0, 20), e.parameters])).toEqual([
      [long.slice(0, 20), ['7']],
      [long.slice(0, 20), ['7']],
      ['select xxx…[320 byte', ['7']],
      ['ALTER ROLE a PASSWOR', ['[redacted]']],
      ['ALTER ROLE a PASSWOR', ['[redacted]']],
    ]);
    expect(events[0]!.query).toBe(events[1]!.query);
    expect(events[4]!.query).toBe('ALTER ROLE a PASSWORD [redacted] -- $1');
    expect(String(events[0]!.query)).toMatch(/^select x{249}…\[320 bytes sha256:[0-9a-f]{64}\]$/);
  });

  it('audits a Parse repeating any earlier one as it audits it the first time', () => {
    // Six statements in turn, named and unnamed, among them a password and a PREPARE; then ten (more
    // than the auditor remembers, one past the bytes it keeps), then the six again; the limit changed in
    // between: every event is the one an auditor that never saw the statement writes.
    const sqls = Array.from({ length: 10 }, (_, i) => `select ${i}, $1 from t${i}`);
    sqls[3] = "ALTER ROLE a PASSWORD 'x' -- $1";
    sqls[5] = 'PREPARE p AS select $1';
    sqls[7] = `select $1, '${'y'.repeat(5000)}'`;
    let max = 256;
    const query = (events: unknown[], auditor: QueryAuditor, i: number) => {
      const name = i % 2 ? '' : `s${i}`;
      const value = Buffer.from(`v${i}`);
      for (const m of [fe.parse(name, sqls[i]!), fe.bind('', name, [], [value]), fe.sync()])
        auditor.onMessage(m[0]!, m.subarray(5), m.length - 5);
      for (const code of '12Z') auditor.onServerMessage(code.charCodeAt(0));
      return events;
    };
    const auditorOf = (events: unknown[]) =>
      new QueryAuditor(
        (e) => events.push(JSON.parse(JSON.stringify(e))),
        () => max,
      );
    const events: unknown[] = [];
    const auditor = auditorOf(events);
    const expected: unknown[] = [];
    for (const [count, limit] of [
      [6, 256],
      [6, 256],
      [6, 12],
      [10, 12],
      [6, 12],
      [6, 256],
    ]) {
      max = limit!;
      for (let i = 0; i < count!; i++) {
        query(events, auditor, i);
        const fresh: unknown[] = [];
        expected.push(...query(fresh, auditorOf(fresh), i));
      }
    }
    expect(events).toHaveLength(40);
    expect(events).toEqual(expected);
    expect(JSON.stringify(events)).not.toMatch(/v3|'x'/);
  });

  it('audits a Parse repeating an earlier one but for its name or types by its own name', () => {
    const ready = ['1', 'Z'];
    const events = audit([
      fe.parse('a', 'DELETE FROM t WHERE id = $1'),
      fe.sync(),
      ...ready,
      fe.parse('b', 'DELETE FROM t WHERE id = $1'),
      fe.sync(),
      ...ready,
      fe.parse('b2', 'DELETE FROM t WHERE id = $1', [23]),
      fe.parse('b2', 'DELETE FROM t WHERE id = $1', [20]),
      fe.sync(),
      '1',
      'E',
      'Z',
      fe.close('S', 'a'),
      fe.sync(),
      '3',
      'Z',
      ...run('a', Buffer.from('1')),
      ...run('b', Buffer.from('2')),
      ...run('b2', Buffer.from('3')),
    ]);
    expect(events).toEqual([
      { query: null, statement: 'a', queryUnknown: expect.stringMatching(/not prepared/), parameters: ['1'] },
      { query: 'DELETE FROM t WHERE id = $1', statement: 'b', parameters: ['2'] },
      { query: 'DELETE FROM t WHERE id = $1', statement: 'b2', parameters: ['3'] },
    ]);
  });

  it("writes a Bind's parameters as the JSON of the array of their audited values", () => {
    const seen: string[] = [];
    const auditor = new QueryAuditor(
      () => undefined,
      () => 8,
      (_info, _statement, parameters) => seen.push(parameters),
    );
    const send = (m: Buffer) => auditor.onMessage(m[0]!, m.subarray(5), m.length - 5);
    send(fe.parse('', 'select $1, $2, $3, $4, $5, $6'));
    const binary = Buffer.alloc(200, 0xab);
    const values = [
      Buffer.from('a"\\\n\u0001é'),
      null,
      binary,
      Buffer.from('0123456789'),
      Buffer.from([0, 1]),
      null,
    ];
    send(fe.bind('', '', [0, 0, 1, 0, 1, 0], values));
    send(fe.bind('', '', [], []));
    send(fe.bind('', '', [1], [Buffer.from([7])]));
    expect(seen).toEqual([
      JSON.stringify([
        'a"\\\n\u0001é',
        null,
        `\\x${'ab'.repeat(128)}${cutMark(binary)}`,
        formatParam(Buffer.from('0123456789'), false, 8),
        '\\x0001',
        null,
      ]),
      '[]',
      '["\\\\x07"]',
    ]);
    expect(seen[0]).toContain('01234567…[10 bytes sha256:');
  });

  it('redacts the parameters of a statement whose PASSWORD lies past the cut of its text', () => {
    const sql = `ALTER ROLE a /* ${'x'.repeat(300)} */ PASSWORD $1`;
    const events = audit([
      fe.parse('s', sql),
      fe.bind('', 's', [], [Buffer.from('hunter2')]),
      fe.sync(),
      ...['1', '2', 'Z'],
      // Unanswered Parses of the name: the Bind lists the candidates, and one of them sets a password.
      fe.parse('t', sql),
      fe.sync(),
      fe.parse('t', 'select $1'),
      fe.sync(),
      fe.bind('', 't', [], [Buffer.from('hunter3')]),
    ]);
    expect(String(events[0]!.query)).not.toMatch(/password/i);
    expect(events[0]).toMatchObject({ statement: 's', parameters: ['[redacted]'] });
    expect(events[1]).toMatchObject({ query: null, statement: 't', parameters: ['[redacted]'] });
    expect(JSON.stringify(events)).not.toMatch(/hunter/);
  });

  it('tells text values that are not UTF-8 apart by the SHA-256 of their bytes', () => {
    const ff = Buffer.from([0x61, 0xff]);
    expect(formatParam(ff, false, 256)).toBe(`a\ufffd${cutMark(ff)}`);
    expect(formatParam(Buffer.from('a\ufffd'), false, 256)).toBe('a\ufffd'); // the character itself
  });

  it('cuts long values at the limit, with the SHA-256 of the whole value', () => {
    expect(formatParam(Buffer.from('a'.repeat(300)), false, 256)).toMatch(
      /^a{256}…\[300 bytes sha256:[0-9a-f]{64}\]$/,
    );
    expect(formatParam(Buffer.alloc(200, 0xab), true, 256)).toMatch(
      /^\\x(ab){128}…\[200 bytes sha256:[0-9a-f]{64}\]$/,
    );
    expect(audit([fe.query('é'.repeat(300))], undefined, 256)[0]!.query).toMatch(/…\[600 bytes sha256:/);
  });
});

describe('redactPasswords', () => {
  it.each([
    ["CREATE ROLE a PASSWORD 'p''w'", 'CREATE ROLE a PASSWORD [redacted]'],
    [
      "create user a with encrypted password 'pw' valid until 'x'",
      "create user a with encrypted password [redacted] valid until 'x'",
    ],
    ['ALTER USER a PASSWORD $$p$w$$; SELECT 1', 'ALTER USER a PASSWORD [redacted]; SELECT 1'],
    ['ALTER USER a PASSWORD $t$p$$w$t$', 'ALTER USER a PASSWORD [redacted]'],
    ["ALTER USER a PASSWORD E'p\\'w'", 'ALTER USER a PASSWORD [redacted]'],
    ["ALTER USER a PASSWORD U&'p'", 'ALTER USER a PASSWORD [redacted]'],
    ["ALTER USER a PASSWORD /* c */ --x\n 'pw'", 'ALTER USER a PASSWORD /* c */ --x\n [redacted]'],
    ["ALTER USER a PASSWORD 'unterminated", 'ALTER USER a PASSWORD [redacted]'],
    [
      "SELECT 'password', \"password\" 'x', password_x 'y'",
      "SELECT 'password', \"password\" 'x', password_x 'y'",
    ],
    [
      "ALTER USER a PASSWORD NULL; create role b password 'q'",
      'ALTER USER a PASSWORD NULL; create role b password [redacted]',
    ],
  ])('%s', (sql, expected) => {
    expect(redactPasswords(sql)).toBe(expected);
  });
});
