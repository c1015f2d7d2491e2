// The common simple Query, audited from its bytes: printable ASCII text that JSON shows as is, with
// none of the words that make the auditor look closer. Its `query` event is the text's bytes between
// quotes, copied from the message into the audit batch: no string is decoded, searched, stringified
// and encoded again per statement. Anything else (a tab or newline, a quote or backslash, non-ASCII,
// a NUL inside, a text past the value limit) takes the string path, which writes the same bytes for
// the texts this one takes.
import { copyRange } from '../../agent/copy-range.js';
import { PASSWORD_WORD } from './redact.js';
import { REWRITE_WORDS } from './statements.js';

/** Words whose statements rewritesStatements or redactPasswords act on (lower-case ASCII letters). */
const NOTABLE = [...REWRITE_WORDS, PASSWORD_WORD];

const enum Byte {
  /** Shown by JSON as is, and no word starts with it. */
  Plain = 0,
  /** A control byte, DEL, `"`, `\` or non-ASCII: the string path. */
  Other = 1,
  /** The first letter of a notable word, either case. */
  WordStart = 2,
}

const BYTES = new Uint8Array(256).fill(Byte.Other);
BYTES.fill(Byte.Plain, 0x20, 0x7f); // DEL (0x7f) is escaped (auditJson)
BYTES[0x22] = Byte.Other; // "
BYTES[0x5c] = Byte.Other; // \
for (const word of NOTABLE) {
  const c = word.charCodeAt(0);
  BYTES[c] = BYTES[c & ~0x20] = Byte.WordStart;
}

/**
 * The length of a whole Query's text (`body` is the message body, its terminator last) when it takes
 * this path: at most `max` bytes (the value limit, so never cut), printable ASCII without `"` or `\`,
 * and none of the notable words in any case (as the auditor's case-insensitive word test); otherwise -1.
 */
export function plainQueryLength(body: Buffer, max: number): number {
  const n = body.length - 1;
  if (n < 0 || n > max || body[n] !== 0) return -1;
  for (let i = 0; i < n; i++) {
    const kind = BYTES[body[i]!]!;
    if (kind !== Byte.Plain && (kind === Byte.Other || startsWord(body, i, n))) return -1;
  }
  return n;
}

/** Whether a notable word starts at `at` (case-insensitive; ASCII letters OR 0x20 are lower case). */
function startsWord(body: Buffer, at: number, end: number): boolean {
  for (const word of NOTABLE) {
    if (word.length > end - at) continue;
    let i = 0;
    while (i < word.length && (body[at + i]! | 0x20) === word.charCodeAt(i)) i++;
    if (i === word.length) return true;
  }
  return false;
}

/**
 * Writes `head` (the event up to `"query":`), the text (`body`'s first `length` bytes, which
 * plainQueryLength accepted) as a JSON string, and the closing `}`; returns where it ends. Room
 * needed: head.length + length + 3.
 */
export function writePlainQuery(buf: Buffer, at: number, head: Buffer, body: Buffer, length: number): number {
  buf.set(head, at);
  at += head.length;
  buf[at++] = 0x22; // "
  at = copyRange(body, 0, length, buf, at);
  buf[at++] = 0x22;
  buf[at++] = 0x7d; // }
  return at;
}

/** Whether JSON shows `buf`'s bytes from `start` to `end` as is: printable ASCII without `"` or `\`. */
export function showsAsIs(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (BYTES[buf[i]!] === Byte.Other) return false;
  return true;
}

const EMPTY = Buffer.alloc(0);
/** Room for 16 values' spans, what almost every statement binds; a larger Bind grows it for itself. */
const USUAL_SPANS = 32;

/**
 * A Bind's parameters when JSON shows each as is (text values that showsAsIs, or NULL): where they lie
 * in the message, so their audit array is copied from it. One per session, reused for every Bind.
 */
export class PlainValues {
  body: Buffer = EMPTY;
  count = 0;
  /** Bytes of their JSON array. */
  jsonBytes = 2;
  /** Each value's start and end in `body`; start -1 for NULL. */
  private spans = new Int32Array(USUAL_SPANS);

  reset(body: Buffer): void {
    this.body = body;
    this.count = 0;
    this.jsonBytes = 2; // []
  }

  /** After the event: lets go of the message, and of spans grown for an outsized Bind (up to 512 KB). */
  release(): void {
    this.body = EMPTY;
    if (this.spans.length > USUAL_SPANS) this.spans = new Int32Array(USUAL_SPANS);
  }

  add(start: number, end: number): void {
    const at = this.count++ * 2;
    if (at === this.spans.length) {
      const wider = new Int32Array(at * 2);
      wider.set(this.spans);
      this.spans = wider;
    }
    this.spans[at] = start;
    this.spans[at + 1] = end;
    this.jsonBytes += (this.count > 1 ? 1 : 0) + (start < 0 ? 4 : end - start + 2);
  }

  /** Writes the JSON array at `at` (room: jsonBytes); returns where it ends. */
  write(buf: Buffer, at: number): number {
    const { body, spans } = this;
    buf[at++] = 0x5b; // [
    for (let v = 0; v < this.count; v++) {
      if (v > 0) buf[at++] = 0x2c; // ,
      const start = spans[v * 2]!;
      if (start < 0) {
        at += buf.write('null', at, 'latin1');
        continue;
      }
      const end = spans[v * 2 + 1]!;
      buf[at++] = 0x22;
      at = copyRange(body, start, end, buf, at);
      buf[at++] = 0x22;
    }
    buf[at++] = 0x5d; // ]
    return at;
  }

  /** The same JSON as a string (a sink without emitWith, tests). */
  json(): string {
    const buf = Buffer.allocUnsafe(this.jsonBytes);
    return buf.toString('latin1', 0, this.write(buf, 0));
  }
}
