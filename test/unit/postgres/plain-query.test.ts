// The byte path of a simple Query's audit event: it takes only texts it writes exactly as the string
// path does (JSON.stringify of the text), and leaves every other text to the string path.
import { describe, expect, it } from 'vitest';
import { auditJson } from '../../../src/agent/audit.js';
import { QueryAuditor } from '../../../src/engines/postgres/audit.js';
import {
  type PlainValues,
  plainQueryLength,
  writePlainQuery,
} from '../../../src/engines/postgres/plain-query.js';
import { PASSWORD_WORD, REDACTED } from '../../../src/engines/postgres/redact.js';
import { REWRITE_WORDS } from '../../../src/engines/postgres/statements.js';
import { fe } from './factory.js';

/** A Query message body: the text's bytes, then the terminator. */
const body = (text: string | Buffer) => Buffer.concat([Buffer.from(text), Buffer.from([0])]);
const HEAD = Buffer.from(',"type":"query","sessionId":"s1","query":');

/** What the byte path writes for `text`, or undefined when it leaves the text to the string path. */
function written(text: string | Buffer, max = 256): string | undefined {
  const b = body(text);
  const n = plainQueryLength(b, max);
  if (n < 0) return undefined;
  const buf = Buffer.alloc(HEAD.length + n + 3 + 8, 0xff);
  const end = writePlainQuery(buf, 4, HEAD, b, n);
  expect(end).toBe(4 + HEAD.length + n + 3);
  expect(buf.subarray(0, 4).every((x) => x === 0xff)).toBe(true);
  return buf.toString('latin1', 4, end);
}

const stringPath = (text: string) => `${HEAD.toString('latin1')}${auditJson(text)}}`;

describe('plain Query texts', () => {
  it('writes what the string path writes, byte for byte', () => {
    for (const text of [
      'SELECT abalance FROM pgbench_accounts WHERE aid = 745707;',
      'select 1',
      '',
      "insert into t values ('it''s', 'a/b', '{}', 'x~')",
      'x'.repeat(200), // past the loop copy: a native copy
      'x'.repeat(256),
    ]) {
      expect(written(text), text).toBe(stringPath(text));
    }
  });

  it('takes every printable ASCII byte but " and \\, and no other byte (DEL neither)', () => {
    for (let c = 0; c < 256; c++) {
      const text = Buffer.from([0x61, c, 0x62]);
      const plain = c >= 0x20 && c < 0x7f && c !== 0x22 && c !== 0x5c;
      expect(written(text), `byte ${c}`).toBe(plain ? stringPath(text.toString('latin1')) : undefined);
    }
  });

  it('leaves texts with the words the auditor looks closer at to the string path, in any case', () => {
    for (const word of ['prepare', 'deallocate', 'discard', 'password']) {
      const mixed = [...word].map((ch, i) => (i % 2 ? ch.toUpperCase() : ch)).join('');
      for (const text of [word, word.toUpperCase(), mixed, `x${word}y`, `select 1; ${mixed}`]) {
        expect(written(text), text).toBeUndefined();
      }
      // A word cut short by the end of the text is not the word.
      expect(written(`select ${word.slice(0, -1)}`)).toBe(stringPath(`select ${word.slice(0, -1)}`));
    }
    expect(written('select passwor, prepar, discar, dealloc from pgbench_accounts')).toBeDefined();
  });

  it('folds case only for words of lower-case ASCII letters, which every notable word is', () => {
    // startsWord compares (byte | 0x20): right for letters only. A word with a digit or _ added to
    // these lists would never match there, and its statements would skip the string path's checks.
    for (const word of [...REWRITE_WORDS, PASSWORD_WORD]) expect(word).toMatch(/^[a-z]+$/);
  });

  it('leaves texts past the value limit, with a NUL inside or without their terminator', () => {
    expect(written('x'.repeat(257))).toBeUndefined();
    expect(written('x'.repeat(10), 9)).toBeUndefined();
    expect(written('x'.repeat(10), 10)).toBe(stringPath('x'.repeat(10)));
    expect(plainQueryLength(Buffer.from('select 1\0x\0'), 256)).toBe(-1);
    expect(plainQueryLength(Buffer.from('select 1'), 256)).toBe(-1);
    expect(plainQueryLength(Buffer.alloc(0), 256)).toBe(-1);
  });
});

describe('plain Bind parameters', () => {
  /** Each Bind's parameters as written: `plain` (copied from the message) or `string` (JSON of the values). */
  function binds(sql: string, values: (Buffer | null)[][], formats: number[] = [], max = 256) {
    const seen: [string, string][] = [];
    const auditor = new QueryAuditor(
      () => undefined,
      () => max,
      (_info, _statement, parameters) => seen.push(['string', parameters]),
      undefined,
      undefined,
      (_info, _statement, plain) => {
        const buf = Buffer.alloc(plain.jsonBytes + 2, 0xff);
        const end = plain.write(buf, 1);
        expect(end).toBe(1 + plain.jsonBytes);
        expect(buf[0]).toBe(0xff);
        seen.push(['plain', buf.toString('latin1', 1, end)]);
      },
    );
    const send = (m: Buffer) => auditor.onMessage(m[0]!, m.subarray(5), m.length - 5);
    send(fe.parse('s', sql));
    for (const v of values) send(fe.bind('', 's', formats, v));
    return seen;
  }
  const text = (...v: (string | null)[]) => v.map((x) => (x === null ? null : Buffer.from(x)));

  it('copies text values and NULLs that JSON shows as is, as JSON.stringify writes them', () => {
    const long = 'x'.repeat(200); // past the loop copy: a native copy
    const seen = binds('select $1, $2, $3', [text('745707', null, ''), text(long, 'a b', null), []]);
    expect(seen).toEqual([
      ['plain', JSON.stringify(['745707', null, ''])],
      ['plain', JSON.stringify([long, 'a b', null])],
      ['plain', '[]'],
    ]);
  });

  it('leaves any other value to the string path, which writes every value from the first', () => {
    const seen = binds('select $1, $2', [text('ok', 'a"b'), text('ok', 'tab\there'), text('é', 'ok')]);
    expect(seen).toEqual([
      ['string', JSON.stringify(['ok', 'a"b'])],
      ['string', JSON.stringify(['ok', 'tab\there'])],
      ['string', JSON.stringify(['é', 'ok'])],
    ]);
    expect(binds('select $1', [text('0123456789')], [], 8)[0]![0]).toBe('string');
    expect(binds('select $1', [[Buffer.from('ab')]], [1])).toEqual([['string', '["\\\\x6162"]']]);
  });

  it('lets go of the message once the event is written, after an outsized Bind too', () => {
    let kept: PlainValues | undefined;
    const seen: string[] = [];
    const auditor = new QueryAuditor(
      () => undefined,
      () => 256,
      undefined,
      undefined,
      undefined,
      (_info, _statement, plain) => {
        kept = plain;
        const buf = Buffer.alloc(plain.jsonBytes);
        plain.write(buf, 0);
        seen.push(buf.toString('latin1'));
      },
    );
    const send = (m: Buffer) => auditor.onMessage(m[0]!, m.subarray(5), m.length - 5);
    send(fe.parse('s', 'select 1'));
    const many = Array.from({ length: 1000 }, (_, i) => Buffer.from(String(i)));
    for (const v of [many, text('a', null)]) {
      send(fe.bind('', 's', [], v));
      // A view of the message would keep the client's whole chunk alive while the session idles.
      expect(kept?.body.length).toBe(0);
    }
    expect(seen).toEqual([JSON.stringify(many.map(String)), JSON.stringify(['a', null])]);
  });

  it('never copies the values of a statement that mentions a password', () => {
    expect(binds('alter role a password $1', [text('hunter2')])).toEqual([
      ['string', JSON.stringify([REDACTED])],
    ]);
  });
});
