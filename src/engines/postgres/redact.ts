// Secrets kept out of the audit log: the string literal after a PASSWORD keyword (CREATE/ALTER ROLE|USER
// … [ENCRYPTED] PASSWORD '…', a user mapping's OPTIONS (password '…')), in any case, quoted any way
// SQL allows ('…', E'…', U&'…', $tag$…$tag$), anywhere in a multi-statement Query. A small lexer rather
// than a regular expression, so a PASSWORD inside a literal, identifier or comment is not taken for the
// keyword, and a literal is cut where PostgreSQL itself ends it.

export const REDACTED = '[redacted]';

export const PASSWORD_WORD = 'password';
const PASSWORD = new RegExp(PASSWORD_WORD, 'i');

/** True when `sql` has PASSWORD anywhere: its Bind parameters are then redacted too. */
export function mentionsPassword(sql: string): boolean {
  return PASSWORD.test(sql);
}

const isWord = (c: number) =>
  (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || (c >= 0x30 && c <= 0x39) || c === 0x5f || c > 0x7f;

/** `sql` with the literal after each PASSWORD keyword replaced by [redacted]. */
export function redactPasswords(sql: string): string {
  if (!PASSWORD.test(sql)) return sql;
  let out = '';
  let copied = 0;
  let afterPassword = false;
  for (let i = 0; i < sql.length;) {
    const c = sql.charCodeAt(i);
    const end = skipSpaceOrComment(sql, i);
    if (end > i) {
      i = end;
      continue;
    }
    const literal = literalEnd(sql, i);
    if (literal > i) {
      if (afterPassword) {
        out += sql.slice(copied, i) + REDACTED;
        copied = literal;
      }
      afterPassword = false;
      i = literal;
      continue;
    }
    if (c === 0x22) {
      // "quoted identifier": never the keyword
      const close = sql.indexOf('"', i + 1);
      i = close < 0 ? sql.length : close + 1;
      afterPassword = false;
      continue;
    }
    if (isWord(c)) {
      let j = i + 1;
      while (j < sql.length && (isWord(sql.charCodeAt(j)) || sql.charCodeAt(j) === 0x24)) j++;
      afterPassword = j - i === 8 && sql.slice(i, j).toLowerCase() === 'password';
      i = j;
      continue;
    }
    afterPassword = false;
    i++;
  }
  return copied === 0 ? sql : out + sql.slice(copied);
}

/** Past whitespace or one comment at `i` (nested block comments, as PostgreSQL allows); `i` if none. */
function skipSpaceOrComment(sql: string, i: number): number {
  const c = sql.charCodeAt(i);
  if (c === 0x20 || (c >= 0x09 && c <= 0x0d)) return i + 1;
  if (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d) {
    const nl = sql.indexOf('\n', i);
    return nl < 0 ? sql.length : nl + 1;
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

/** The end of a string literal starting at `i` ('…', E'…', U&'…', B'…', X'…', $tag$…$tag$), or `i`. */
function literalEnd(sql: string, i: number): number {
  const c = sql.charCodeAt(i) | 0x20;
  if (sql.charCodeAt(i) === 0x27) return quotedEnd(sql, i + 1, false);
  if ((c === 0x65 || c === 0x62 || c === 0x78 || c === 0x6e) && sql.charCodeAt(i + 1) === 0x27) {
    return quotedEnd(sql, i + 2, c === 0x65); // E'…' has backslash escapes
  }
  if (c === 0x75 && sql.charCodeAt(i + 1) === 0x26 && sql.charCodeAt(i + 2) === 0x27) {
    return quotedEnd(sql, i + 3, false);
  }
  if (sql.charCodeAt(i) === 0x24) {
    const tag = /^\$(?:[A-Za-z_\u0080-\uffff][\w\u0080-\uffff]*)?\$/.exec(sql.slice(i, i + 64));
    if (!tag) return i;
    const close = sql.indexOf(tag[0], i + tag[0].length);
    return close < 0 ? sql.length : close + tag[0].length;
  }
  return i;
}

function quotedEnd(sql: string, from: number, backslashes: boolean): number {
  for (let j = from; j < sql.length; j++) {
    const c = sql.charCodeAt(j);
    if (backslashes && c === 0x5c) j++;
    else if (c === 0x27) {
      if (sql.charCodeAt(j + 1) !== 0x27) return j + 1;
      j++;
    }
  }
  return sql.length;
}
