import { Scalar, stringify } from 'yaml';
import { UNSEEN, escapeUnseen, escapeUnseenYaml } from '../../unseen.js';

// Text from the cluster reaches a person's terminal: table cells built from AccessRoles that any
// namespace's tenant may write (a DatabaseUser there can name anyone, so their roles show up in that
// person's `kubectl db ls -A`), CSR denial messages quoting those roles, API server errors. A terminal
// obeys control sequences in it (clear the screen, rewrite lines, set the clipboard with OSC 52, fake
// a prompt) and bidi overrides reorder what is shown, so these are printed as visible escapes instead.

// C0 controls but tab and newline, DEL and C1 controls, and the bidi embedding/override/isolate marks.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;
// eslint-disable-next-line no-control-regex
const UNSAFE_IN_LINE = /[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/g;

const escape = (c: string) => {
  const code = c.charCodeAt(0);
  return code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`;
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
  // Only a double-quoted YAML string has escapes: such strings are written so.
  const quoted = (_key: unknown, v: unknown) => {
    if (typeof v !== 'string' || !UNSEEN.test(v)) return v;
    const node = new Scalar(v);
    node.type = 'QUOTE_DOUBLE';
    return node;
  };
  return escapeUnseenYaml(stringify(value, quoted));
}
