// Characters JSON (and YAML) leave as they are but a log viewer or terminal may not show as they are:
// C1 controls (a terminal may act on them: U+009B is CSI), DEL, bidirectional overrides and isolates
// (text that reads otherwise than it is: Trojan Source), zero-width and other format characters (two
// names that look the same), and the line and paragraph separators some tools break lines at. The
// audit log, the agent's and controller's own log lines and kubectl db's JSON and YAML escape them.

export const UNSEEN = /[\u007f-\u009f\u2028\u2029\p{Cf}]/u;
const UNSEEN_ALL = new RegExp(UNSEEN.source, 'gu');

/** Each UTF-16 unit as a JSON `\uXXXX` escape (a character past U+FFFF is two). */
function jsonEscape(c: string): string {
  let out = '';
  for (let i = 0; i < c.length; i++) out += `\\u${c.charCodeAt(i).toString(16).padStart(4, '0')}`;
  return out;
}

/** YAML escapes code points, not UTF-16 units: `\U` and eight digits past U+FFFF. */
function yamlEscape(c: string): string {
  const code = c.codePointAt(0)!;
  return code > 0xffff ? `\\U${code.toString(16).padStart(8, '0')}` : jsonEscape(c);
}

/**
 * JSON text with unseen characters written as `\u` escapes: the same JSON value. They may only stand
 * inside JSON strings, as JSON.stringify leaves them.
 */
export function escapeUnseen(json: string): string {
  return UNSEEN.test(json) ? json.replace(UNSEEN_ALL, jsonEscape) : json;
}

/**
 * The same for YAML text whose strings holding unseen characters are double-quoted (yamlQuoted), the
 * one YAML style with escapes.
 */
export function escapeUnseenYaml(yaml: string): string {
  return UNSEEN.test(yaml) ? yaml.replace(UNSEEN_ALL, yamlEscape) : yaml;
}
