// kubectl's plain table: upper-case headers, columns padded to the widest cell, three spaces apart.
// Cells hold text from the cluster (role rules, status reasons): shown, never obeyed by the terminal.
import { printableLine } from './printable.js';

export function renderTable(headers: readonly string[], cells: readonly (readonly string[])[]): string {
  const rows = cells.map((r) => r.map(printableLine));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}
