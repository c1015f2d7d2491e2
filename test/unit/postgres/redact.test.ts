// Password redaction must never hide SQL that runs: wherever the server may read a statement otherwise
// than the agent's lexer (a session setting, a client encoding, a lexer rule), only what is a password
// literal either way is redacted, or the statement is refused.
import { describe, expect, it } from 'vitest';
import { redactPasswords } from '../../../src/engines/postgres/redact.js';

describe('redactPasswords', () => {
  it.each([
    ["ALTER ROLE a PASSWORD 'p\\w'", 'ALTER ROLE a PASSWORD [redacted]'],
    ["ALTER ROLE a PASSWORD 'ends\\'", 'ALTER ROLE a PASSWORD [redacted]'],
    ["ALTER ROLE a PASSWORD E'it\\'s'", 'ALTER ROLE a PASSWORD [redacted]'],
    [
      "ALTER ROLE a PASSWORD $x$s3cret$x$ VALID UNTIL 'infinity'",
      "ALTER ROLE a PASSWORD [redacted] VALID UNTIL 'infinity'",
    ],
    ["ALTER ROLE a PASSWORD -- note\n's3cret'", 'ALTER ROLE a PASSWORD -- note\n[redacted]'],
    // PostgreSQL joins literals separated by a newline (and spaces or -- comments): one password.
    ["ALTER ROLE a PASSWORD 'sec'\n'ret'", 'ALTER ROLE a PASSWORD [redacted]'],
    [
      "ALTER ROLE a PASSWORD 's' -- c\r\n  -- d\n\t'e'\f\n'c' VALID UNTIL 'infinity'",
      "ALTER ROLE a PASSWORD [redacted] VALID UNTIL 'infinity'",
    ],
    ["ALTER ROLE a PASSWORD E'a'\n'\\'b'", 'ALTER ROLE a PASSWORD [redacted]'],
    ["ALTER ROLE a PASSWORD U&'a'\n'b' UESCAPE '!'", "ALTER ROLE a PASSWORD [redacted] UESCAPE '!'"],
    // Without a newline, or across a block comment, PostgreSQL does not join them (a syntax error).
    ["ALTER ROLE a PASSWORD 'sec' 'ret'", "ALTER ROLE a PASSWORD [redacted] 'ret'"],
    ["ALTER ROLE a PASSWORD 'sec' /* */\n'ret'", "ALTER ROLE a PASSWORD [redacted] /* */\n'ret'"],
    // Role and server statements only, each statement of a Query on its own.
    [
      "SELECT 1; create USER MAPPING FOR a SERVER s OPTIONS (user 'u', password 'p')",
      "SELECT 1; create USER MAPPING FOR a SERVER s OPTIONS (user 'u', password [redacted])",
    ],
    ["ALTER SERVER s OPTIONS (SET password 'p')", 'ALTER SERVER s OPTIONS (SET password [redacted])'],
    ["/* c */ CREATE GROUP g PASSWORD 'p'", '/* c */ CREATE GROUP g PASSWORD [redacted]'],
    [
      "ALTER ROLE a PASSWORD 'p'; SELECT run(password 'DELETE FROM t')",
      "ALTER ROLE a PASSWORD [redacted]; SELECT run(password 'DELETE FROM t')",
    ],
    ["ALTER TABLE t ADD c text DEFAULT run(password 'DELETE FROM t')", null],
    ["SELECT ';' AS x; ALTER ROLE a PASSWORD 'p'", "SELECT ';' AS x; ALTER ROLE a PASSWORD [redacted]"],
    // The body of a DO block or function in PL/pgSQL or SQL: a role statement after ; BEGIN THEN ELSE LOOP.
    [
      "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN " +
        "CREATE ROLE app LOGIN PASSWORD 's'; END IF; END $$",
      "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN " +
        'CREATE ROLE app LOGIN PASSWORD [redacted]; END IF; END $$',
    ],
    [
      "DO LANGUAGE plpgsql $x$ BEGIN ALTER USER app WITH PASSWORD 's'; END $x$",
      'DO LANGUAGE plpgsql $x$ BEGIN ALTER USER app WITH PASSWORD [redacted]; END $x$',
    ],
    [
      "CREATE OR REPLACE FUNCTION f() RETURNS void AS $$ SELECT 1; ALTER ROLE app PASSWORD 's' $$ LANGUAGE sql",
      'CREATE OR REPLACE FUNCTION f() RETURNS void AS $$ SELECT 1; ALTER ROLE app PASSWORD [redacted] $$ LANGUAGE sql',
    ],
    // Not SQL, or no statement: shown as is.
    ["DO $$ alter role password 'DELETE FROM t'; $$ LANGUAGE plperl", null],
    ["DO LANGUAGE 'plpgsql' $$ BEGIN ALTER ROLE app PASSWORD 's'; END $$", null],
    ["DO $$ BEGIN PERFORM alter user, pg_temp.run(password 'DELETE FROM t'); END $$", null],
    ["SELECT $$ALTER ROLE app PASSWORD 's'$$", null],
  ])('%j', (sql, audited) => {
    expect(redactPasswords(sql)).toBe(audited ?? sql);
  });

  it('joins 100,000 continued pieces into one literal', () => {
    const sql = `ALTER ROLE a PASSWORD 'x'${"\n'x'".repeat(100_000)}; SELECT 1`;
    expect(redactPasswords(sql)).toBe('ALTER ROLE a PASSWORD [redacted]; SELECT 1');
  });

  it.each([
    // With standard_conforming_strings off (SET by the client), the first literal runs to the quote
    // before the semicolon: the DELETE runs.
    ["SELECT 'a\\' PASSWORD '; DELETE FROM t; --'", "SELECT 'a\\' PASSWORD '"],
    ["SELECT N'a\\' PASSWORD '; DELETE FROM t; --'", "SELECT N'a\\' PASSWORD '"],
    ["ALTER ROLE a PASSWORD 'a\\'; DELETE FROM t; --'", 'ALTER ROLE a PASSWORD [redacted]'],
    // A type or domain named password (pg_temp's, which anyone may create) makes a typed literal: its text
    // runs through a function that executes it. Only role and server statements have the keyword.
    ["SELECT run(password '; DELETE FROM t; --')", "SELECT run(password '"],
    // A carriage return ends a -- comment for PostgreSQL: the literal starts before PASSWORD.
    ["SELECT 1 -- x\r, 'abc\n PASSWORD '; DELETE FROM t; --'", "SELECT 1 -- x\r, 'abc\n PASSWORD '"],
    // A dollar quote's tag may be of any length.
    [`SELECT $${'a'.repeat(70)}$ PASSWORD '$${'a'.repeat(70)}$; DELETE FROM t; --'`, ' PASSWORD '],
  ])('shows what runs: %j', (sql, kept) => {
    const audited = redactPasswords(sql);
    expect(audited).toContain('; DELETE FROM t; --');
    expect(audited).toContain(kept);
  });

  it.each([
    // SJIS: 0x81 0x5C is one character (client_encoding SJIS), read as U+FFFD and a backslash.
    ["ALTER ROLE a PASSWORD E'x\ufffd\\'; DELETE FROM t; --'"],
    // UTF-8 'Ł' is C5 81: SJIS reads 81 5C as one character again, the string is valid UTF-8.
    ["ALTER ROLE a PASSWORD E'x\u0141\\'; DELETE FROM t; --'"],
  ])('refuses a password literal whose end depends on the client encoding: %j', (sql) => {
    expect(() => redactPasswords(sql)).toThrow(/cannot tell where the password literal/);
  });

  it('leaves alone what has no password literal, whatever its bytes', () => {
    const sql = "SELECT 'x\ufffd\\' AS password";
    expect(redactPasswords(sql)).toBe(sql);
  });
});
