// helm against a test control plane, its caches inside the plane's temp dir.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import type { ControlPlane } from '../../k8s/controlplane.js';

const run = promisify(execFile);

export const CHART = path.resolve('charts/drawbridge');

/** Runs helm and resolves to its stdout; rejects with an error carrying `stderr`. */
export function helmFor(plane: ControlPlane): (args: string[]) => Promise<string> {
  const env = {
    ...process.env,
    KUBECONFIG: plane.kubeconfigPath,
    HELM_CACHE_HOME: path.join(plane.dir, 'helm/cache'),
    HELM_CONFIG_HOME: path.join(plane.dir, 'helm/config'),
    HELM_DATA_HOME: path.join(plane.dir, 'helm/data'),
  };
  return async (args) => {
    const { stdout } = await run(path.join(plane.binDir, 'helm'), args, { env, maxBuffer: 16 << 20 });
    return stdout;
  };
}

export type Doc = {
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
} & Record<string, unknown>;

/** `helm template` of the chart with these `--set` values, as objects. */
export async function render(
  helm: (args: string[]) => Promise<string>,
  ns: string,
  set: string[],
): Promise<Doc[]> {
  const out = await helm(['template', 'drawbridge', CHART, '-n', ns, ...set.flatMap((s) => ['--set', s])]);
  return parseAllDocuments(out).map((d) => {
    if (d.errors.length) throw new Error(`helm template printed invalid YAML: ${d.errors.join('; ')}`);
    return d.toJS() as Doc;
  });
}
