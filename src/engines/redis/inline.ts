// Inline commands (`SET k "a b"\r\n`, what telnet users type), split the way Redis's sdssplitargs
// does: blanks separate arguments, "double quotes" take \n \r \t \b \a \\ \" and \xHH escapes,
// 'single quotes' take only \', and a closing quote must be followed by a blank or the line end.

const enum Ch {
  Tab = 0x09,
  LF = 0x0a,
  CR = 0x0d,
  Space = 0x20,
  DQuote = 0x22,
  SQuote = 0x27,
  Backslash = 0x5c,
  Nul = 0x00,
}

/** C isspace(): what sdssplitargs skips between arguments. */
function isSpace(c: number | undefined): boolean {
  return c === Ch.Space || (c !== undefined && c >= Ch.Tab && c <= Ch.CR);
}

/** What ends an unquoted argument (a narrower set than isSpace, as in Redis). */
function endsWord(c: number): boolean {
  return c === Ch.Space || c === Ch.LF || c === Ch.CR || c === Ch.Tab;
}

function hexValue(c: number | undefined): number {
  if (c === undefined) return -1;
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const l = c | 0x20;
  return l >= 0x61 && l <= 0x66 ? l - 0x61 + 10 : -1;
}

const ESCAPES: Record<number, number> = { 0x6e: 0x0a, 0x72: 0x0d, 0x74: 0x09, 0x62: 0x08, 0x61: 0x07 };

/**
 * Arguments of the line `buf[from, to)`, or undefined for unbalanced quotes or a NUL byte (Redis
 * stops at NUL; the agent refuses rather than guess). Unquoted lines yield slices, not copies.
 */
export function splitInline(buf: Buffer, from: number, to: number): Buffer[] | undefined {
  const line = buf.subarray(from, to);
  if (line.includes(Ch.Nul)) return undefined;
  if (!line.includes(Ch.DQuote) && !line.includes(Ch.SQuote)) return splitPlain(line);
  return splitQuoted(line);
}

function splitPlain(line: Buffer): Buffer[] {
  const args: Buffer[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && isSpace(line[i])) i++;
    if (i >= line.length) break;
    const s = i;
    while (i < line.length && !endsWord(line[i]!)) i++;
    args.push(line.subarray(s, i));
  }
  return args;
}

function splitQuoted(line: Buffer): Buffer[] | undefined {
  const args: Buffer[] = [];
  const n = line.length;
  let p = 0;
  for (;;) {
    while (p < n && isSpace(line[p])) p++;
    if (p >= n) return args;
    const out: number[] = [];
    let inDouble = false;
    let inSingle = false;
    for (let done = false; !done; p++) {
      const c = line[p];
      if (inDouble) {
        if (c === undefined) return undefined;
        const h1 = hexValue(line[p + 2]);
        const h2 = hexValue(line[p + 3]);
        if (c === Ch.Backslash && line[p + 1] === 0x78 /* x */ && h1 >= 0 && h2 >= 0) {
          out.push(h1 * 16 + h2);
          p += 3;
        } else if (c === Ch.Backslash && p + 1 < n) {
          p++;
          out.push(ESCAPES[line[p]!] ?? line[p]!);
        } else if (c === Ch.DQuote) {
          if (p + 1 < n && !isSpace(line[p + 1])) return undefined;
          done = true;
        } else out.push(c);
      } else if (inSingle) {
        if (c === undefined) return undefined;
        if (c === Ch.Backslash && line[p + 1] === Ch.SQuote) {
          p++;
          out.push(Ch.SQuote);
        } else if (c === Ch.SQuote) {
          if (p + 1 < n && !isSpace(line[p + 1])) return undefined;
          done = true;
        } else out.push(c);
      } else if (c === undefined || endsWord(c)) {
        done = true;
      } else if (c === Ch.DQuote) {
        inDouble = true;
      } else if (c === Ch.SQuote) {
        inSingle = true;
      } else out.push(c);
    }
    args.push(Buffer.from(out));
  }
}
