// helm against a test control plane, its caches inside the plane's temp dir; the chart suites' plane.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { type ControlPlane, startControlPlane } from '../../k8s/controlplane.js';

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

export interface HelmFixture {
  readonly plane: ControlPlane;
  /** helm against the plane. */
  helm(args: string[]): Promise<string>;
  /** `helm template` of the chart in the namespace, with these `--set` values. */
  template(...set: string[]): Promise<Doc[]>;
}

/** A control plane with namespace `ns` for the calling test file (its beforeAll/afterAll), and helm against it. */
export function helmFixture(ns: string): HelmFixture {
  let plane: ControlPlane | undefined;
  let helm: ((args: string[]) => Promise<string>) | undefined;
  beforeAll(async () => {
    plane = await startControlPlane();
    helm = helmFor(plane);
    await plane.kubectl(['create', 'namespace', ns]);
  });
  afterAll(async () => {
    await plane?.stop();
  });
  return {
    get plane() {
      return plane!;
    },
    helm: (args) => helm!(args),
    template: (...set) => render(helm!, ns, set),
  };
}
