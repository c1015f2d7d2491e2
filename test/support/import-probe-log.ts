// The test side of the import probe (import-probe.ts, loaded into an agent with `--import`): the
// agent's Node options and environment, and which of its processes loaded what.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';

export interface ImportProbe {
  nodeArgs: string[];
  env: Record<string, string>;
  /** The processes that loaded a module of `entry` (one of those asked for), in the order they did. */
  loadedBy(entry: string): Promise<number[]>;
}

/** A probe logging to a file in `dir` the processes that load any of `entries` (packages or `/path/` parts). */
export async function importProbe(dir: string, entries: string[]): Promise<ImportProbe> {
  const file = path.join(dir, 'modules-loaded');
  await writeFile(file, '');
  return {
    nodeArgs: [`--import=${path.resolve('dist/test/support/import-probe.js')}`],
    env: { DRAWBRIDGE_IMPORT_PROBE_PACKAGES: entries.join(','), DRAWBRIDGE_IMPORT_PROBE_FILE: file },
    async loadedBy(entry) {
      const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
      return lines.map((l) => l.split(' ')).flatMap(([pid, p]) => (p === entry ? [Number(pid)] : []));
    },
  };
}
