import { Document, visit } from 'yaml';
import { UNSEEN, escapeUnseen, escapeUnseenYaml } from '../../unseen.js';

// Text from the cluster reaches a person's terminal: table cells built from AccessRoles that any
// namespace's tenant may write (a DatabaseUser there can name anyone, so their roles show up in that
// person's `kubectl db ls -A`), CSR denial messages quoting those roles, API server errors. A terminal
// obeys control sequences in it (clear the screen, rewrite lines, set the clipboard with OSC 52, fake
// a prompt) and bidi overrides reorder what is shown, so these are printed as visible escapes instead.

// C0 controls but tab and newline, and what unseen.ts names (DEL, C1 controls, U+2028/2029, format
// characters: bidi embeddings, overrides and isolates, zero-width characters), as -o json|yaml escape.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\x00-\x08\x0b-\x1f\u007f-\u009f\u2028\u2029\p{Cf}]/gu;
// eslint-disable-next-line no-control-regex
const UNSAFE_IN_LINE = /[\x00-\x1f\u007f-\u009f\u2028\u2029\p{Cf}]/gu;

const escape = (c: string) => {
  const code = c.codePointAt(0)!;
  if (code <= 0xff) return `\\x${code.toString(16).padStart(2, '0')}`;
  return code <= 0xffff ? `\\u${code.toString(16).padStart(4, '0')}` : `\\u{${code.toString(16)}}`;
};

/** `text` with control characters shown as `\xNN` / `\uNNNN`; newlines and tabs are kept. */
export function printable(text: string): string {
  return text.replace(UNSAFE, escape);
}

/** Like printable, for one table cell or line: newlines and tabs are escaped too. */
export function printableLine(text: string): string {
  return text.replace(UNSAFE_IN_LINE, escape);
}

/**
 * `-o json` and `-o yaml`: the same values, with C1 controls, bidi and other format characters (which
 * JSON.stringify and the YAML writer leave as they are) written as escapes a terminal shows.
 */
export function printableOutput(value: unknown, format: 'json' | 'yaml'): string {
  if (format === 'json') return `${escapeUnseen(JSON.stringify(value, null, 2))}\n`;
  // Only a double-quoted YAML string has escapes: such strings, map keys too (labels), are written so.
  const doc = new Document(value);
  visit(doc, {
    Scalar(_, node) {
      if (typeof node.value === 'string' && UNSEEN.test(node.value)) node.type = 'QUOTE_DOUBLE';
    },
  });
  return escapeUnseenYaml(doc.toString());
}
