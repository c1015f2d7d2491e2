// The Python venvs tests start emulators and clients from (test/support/venv.sh): one per pinned
// requirements file, made on first use and cached outside the repository.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = path.dirname(fileURLToPath(import.meta.url));
/** The repository root, whether this runs from test/support or from its build in dist/test/support. */
export const REPO_ROOT = HERE.endsWith(path.join('dist', 'test', 'support'))
  ? path.resolve(HERE, '../../..')
  : path.resolve(HERE, '../..');

/** Creates the venv for `requirements` (a path from the repository root) if needed; returns its python. */
export function venvPython(requirements: string): string {
  const script = path.join(REPO_ROOT, 'test/support/venv.sh');
  const file = path.join(REPO_ROOT, requirements);
  const made = spawnSync('bash', [script, file], { stdio: 'inherit' });
  if (made.status !== 0) throw new Error(`test/support/venv.sh ${requirements} failed (exit ${made.status})`);
  return spawnSync('bash', [script, file, '--python'], { encoding: 'utf8' }).stdout.trim();
}
