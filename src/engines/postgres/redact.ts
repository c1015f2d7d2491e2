// Secrets kept out of the audit log: the string literal after a PASSWORD keyword of a role or server
// statement (CREATE/ALTER ROLE|USER|GROUP … [ENCRYPTED] PASSWORD '…', a user mapping's or server's
// OPTIONS (password '…')), in any case, quoted any way SQL allows ('…', E'…', U&'…', $tag$…$tag$,
// 'pieces' on lines of their own), anywhere in a multi-statement Query, and in the body of a DO block
// or function in PL/pgSQL or SQL (migrations: IF NOT EXISTS … THEN CREATE ROLE … PASSWORD '…'). A
// small lexer rather than a regular expression, so a PASSWORD inside a literal, identifier or comment
// is not taken for the keyword, and a literal is cut where PostgreSQL itself ends it.

import { DrawbridgeError } from '../../errors.js';

export const REDACTED = '[redacted]';

export const PASSWORD_WORD = 'password';
const PASSWORD = new RegExp(PASSWORD_WORD, 'i');

/** True when `sql` has PASSWORD anywhere: its Bind parameters are then redacted too. */
export function mentionsPassword(sql: string): boolean {
  return PASSWORD.test(sql);
}

const isWord = (c: number) =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c > 0x7f;

/**
 * `sql` with the literal after each PASSWORD keyword replaced by [redacted]. Where the server's reading
 * may differ from the agent's, only what is a password literal either way is redacted: a backslash in a
 * '…' literal escapes only with standard_conforming_strings off (a session setting the agent does not
 * follow), so both readings are made. Redacting by the wrong one would hide SQL that runs (SELECT
 * 'a\' PASSWORD '; DELETE …' is one SELECT and a DELETE to a server with it off).
 */
export function redactPasswords(sql: string): string {
  if (!PASSWORD.test(sql)) return sql;
  let spans = passwordLiterals(sql, false);
  if (spans.length > 0 && sql.includes('\\')) spans = intersect(spans, passwordLiterals(sql, true));
  if (spans.length === 0) return sql;
  // In a client_encoding such as SJIS or BIG5, a backslash after a non-ASCII byte may be part of that
  // character, and bytes that are not UTF-8 read as U+FFFD: the server may end the literal elsewhere.
  if (sql.includes('\ufffd') || /[^\0-\x7f]\\/.test(sql)) {
    throw new DrawbridgeError(
      'PROTOCOL_ERROR',
      'the agent cannot tell where the password literal of this statement ends (it is not UTF-8, or has a ' +
        'backslash after a character that is not ASCII), so it can neither redact it nor show the statement',
      "send it in UTF-8 (SET client_encoding = 'UTF8'), or set the password with psql's \\password",
    );
  }
  let out = '';
  let copied = 0;
  for (const [from, to] of spans) {
    out += sql.slice(copied, from) + REDACTED;
    copied = to;
  }
  return out + sql.slice(copied);
}

/**
 * The statements whose PASSWORD is followed by a password: CREATE/ALTER ROLE, USER (and USER MAPPING's
 * OPTIONS), GROUP, SERVER (OPTIONS). No literal in them is ever evaluated. Elsewhere `password '…'` is
 * no role option but may be a typed literal (a type or domain named password, e.g. in pg_temp, which
 * every user may create), whose text a function can run: `SELECT run(password 'DELETE FROM t')`.
 */
const PASSWORD_STATEMENTS = new Set(['role', 'user', 'group', 'server']);

/** Languages whose bodies are SQL: a DO block's or function's in them is read for role statements too. */
const SQL_LANGUAGES = new Set(['plpgsql', 'sql']);
/** Words after which a statement starts in a PL/pgSQL body (besides a semicolon). */
const BLOCK_WORDS = new Set(['begin', 'then', 'else', 'loop']);

/**
 * Where each literal after a PASSWORD keyword of a role or server statement starts and ends; '…' with
 * backslash escapes or not. `nested`: `sql` is the body of a DO block or function in PL/pgSQL or SQL,
 * where a statement also starts after BEGIN, THEN, ELSE and LOOP.
 */
function passwordLiterals(sql: string, backslashInPlain: boolean, nested = false): [number, number][] {
  const spans: [number, number][] = [];
  let afterPassword = false;
  /** Tokens of the statement so far (a top-level semicolon starts the next one), and its first word. */
  let tokens = 0;
  let first = '';
  /** The previous token in lower case when a word of at most 9 characters, else ''. */
  let prev = '';
  /** The token number of a CREATE or ALTER that starts a statement. */
  let verb = -1;
  let passwordStatement = false;
  /** A DO block or CREATE FUNCTION/PROCEDURE, and whether its LANGUAGE (if named) is SQL. */
  let routine = false;
  let sqlLanguage = true;
  /** Its $…$ literals that mention PASSWORD: their text, read as SQL at the end of the statement. */
  let bodies: [number, number][] = [];
  const endStatement = () => {
    if (routine && sqlLanguage) {
      for (const [from, to] of bodies) {
        for (const [a, b] of passwordLiterals(sql.slice(from, to), backslashInPlain, true))
          spans.push([from + a, from + b]);
      }
    }
    tokens = 0;
    verb = -1;
    passwordStatement = routine = false;
    sqlLanguage = true;
    bodies = [];
  };
  for (let i = 0; i < sql.length;) {
    const c = sql.charCodeAt(i);
    const end = skipSpaceOrComment(sql, i);
    if (end > i) {
      i = end;
      continue;
    }
    tokens++;
    const literal = literalEnd(sql, i, backslashInPlain);
    if (literal > i) {
      if (afterPassword) spans.push([i, literal]);
      else if (routine && c === 0x24) {
        const body = dollarBody(sql, i, literal);
        if (body && PASSWORD.test(sql.slice(body[0], body[1]))) bodies.push(body);
      }
      if (prev === 'language') sqlLanguage = false; // LANGUAGE 'name': not read as SQL
      afterPassword = false;
      prev = '';
      i = literal;
      continue;
    }
    if (c === 0x22) {
      // "quoted identifier": never the keyword
      const close = sql.indexOf('"', i + 1);
      i = close < 0 ? sql.length : close + 1;
      if (prev === 'language') sqlLanguage = false;
      afterPassword = false;
      prev = '';
      continue;
    }
    if (isWord(c)) {
      let j = i + 1;
      while (j < sql.length && (isWord(sql.charCodeAt(j)) || sql.charCodeAt(j) === 0x24)) j++;
      const word = j - i <= 9 ? sql.slice(i, j).toLowerCase() : '';
      if (verb === tokens - 1) passwordStatement ||= PASSWORD_STATEMENTS.has(word);
      const starts = tokens === 1 || (nested && BLOCK_WORDS.has(prev));
      if (starts && (word === 'create' || word === 'alter')) verb = tokens;
      if (tokens === 1) first = word;
      if (!nested && (first === 'do' || (first === 'create' && tokens <= 4))) {
        routine ||= first === 'do' || word === 'function' || word === 'procedure';
      }
      if (prev === 'language') sqlLanguage &&= SQL_LANGUAGES.has(word);
      afterPassword = passwordStatement && word === 'password';
      prev = word;
      i = j;
      continue;
    }
    if (c === 0x3b) endStatement();
    afterPassword = false;
    prev = '';
    i++;
  }
  endStatement();
  return spans;
}

/** The text of the $tag$…$tag$ literal from `start` to `end`, without its tags; undefined if unclosed. */
function dollarBody(sql: string, start: number, end: number): [number, number] | undefined {
  DOLLAR_TAG.lastIndex = start;
  const tag = DOLLAR_TAG.exec(sql)![0];
  if (end - start < 2 * tag.length || !sql.startsWith(tag, end - tag.length)) return undefined;
  return [start + tag.length, end - tag.length];
}

/** The parts of the spans in `a` that are also in spans in `b` (both sorted, none overlapping). */
function intersect(a: [number, number][], b: [number, number][]): [number, number][] {
  const out: [number, number][] = [];
  for (let i = 0, j = 0; i < a.length && j < b.length;) {
    const from = Math.max(a[i]![0], b[j]![0]);
    const to = Math.min(a[i]![1], b[j]![1]);
    if (from < to) out.push([from, to]);
    if (a[i]![1] < b[j]![1]) i++;
    else j++;
  }
  return out;
}

const LINE_END = /[\n\r]/g;

/** Past whitespace or one comment at `i` (nested block comments, as PostgreSQL allows); `i` if none. */
function skipSpaceOrComment(sql: string, i: number): number {
  const c = sql.charCodeAt(i);
  if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) return i + 1;
  if (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d) {
    // As PostgreSQL's lexer: a carriage return ends it too.
    LINE_END.lastIndex = i;
    const nl = LINE_END.exec(sql);
    return nl ? nl.index + 1 : sql.length;
  }
  if (c === 0x2f && sql.charCodeAt(i + 1) === 0x2a) {
    let depth = 0;
    for (let j = i; j < sql.length - 1; j++) {
      if (sql.startsWith('/*', j)) {
        depth++;
        j++;
      } else if (sql.startsWith('*/', j)) {
        if (--depth === 0) return j + 2;
        j++;
      }
    }
    return sql.length;
  }
  return i;
}

const DOLLAR_TAG = /\$(?:[A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/y;

/** The end of a string literal starting at `i` ('…', E'…', U&'…', B'…', X'…', $tag$…$tag$), or `i`. */
function literalEnd(sql: string, i: number, backslashInPlain: boolean): number {
  const c = sql.charCodeAt(i) | 0x20;
  if (sql.charCodeAt(i) === 0x27) return quotedEnd(sql, i + 1, backslashInPlain);
  if ((c === 0x65 || c === 0x62 || c === 0x78 || c === 0x6e) && sql.charCodeAt(i + 1) === 0x27) {
    // E'…' has backslash escapes; N'…' as '…'
    return quotedEnd(sql, i + 2, c === 0x65 || (c === 0x6e && backslashInPlain));
  }
  if (c === 0x75 && sql.charCodeAt(i + 1) === 0x26 && sql.charCodeAt(i + 2) === 0x27) {
    return quotedEnd(sql, i + 3, false);
  }
  if (sql.charCodeAt(i) === 0x24) {
    // A tag of any length, as PostgreSQL's.
    DOLLAR_TAG.lastIndex = i;
    const tag = DOLLAR_TAG.exec(sql);
    if (!tag) return i;
    const close = sql.indexOf(tag[0], i + tag[0].length);
    return close < 0 ? sql.length : close + tag[0].length;
  }
  return i;
}

/**
 * The end of a quoted literal whose text starts at `from`, with its continuations: PostgreSQL joins
 * 'sec'<newline>'ret' into one literal ('secret'), read the same way (E'…' keeps its escapes).
 */
function quotedEnd(sql: string, from: number, backslashes: boolean): number {
  for (let j = from; j < sql.length; j++) {
    const c = sql.charCodeAt(j);
    if (backslashes && c === 0x5c) j++;
    else if (c === 0x27) {
      if (sql.charCodeAt(j + 1) === 0x27) j++;
      else {
        const next = continuation(sql, j + 1);
        if (next < 0) return j + 1;
        j = next;
      }
    }
  }
  return sql.length;
}

/**
 * The opening quote of a literal continuing the one closed just before `i`, or -1: as PostgreSQL's
 * lexer (quotecontinue), spaces and -- comments with at least one newline between the two, nothing
 * else (not a block comment). A vertical tab counts as a space, as from PostgreSQL 16: to 15 it is no
 * SQL at all, so the statement fails whichever way it is read.
 */
function continuation(sql: string, i: number): number {
  let newline = false;
  for (; i < sql.length; i++) {
    const c = sql.charCodeAt(i);
    if (c === 0x0a || c === 0x0d) newline = true;
    else if (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d) {
      LINE_END.lastIndex = i;
      const nl = LINE_END.exec(sql);
      if (!nl) return -1;
      i = nl.index - 1; // the newline is read next
    } else if (c !== 0x20 && c !== 0x09 && c !== 0x0b && c !== 0x0c) return newline && c === 0x27 ? i : -1;
  }
  return -1;
}
