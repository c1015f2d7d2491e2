/**
 * The chart's CRDs (crds.enabled, crds.keep) through a whole lifecycle on a real API server: an upgrade
 * updates them, uninstall keeps them (and every Database) unless crds.keep=false, a reinstall adopts
 * kept ones, and a release of the old chart (CRDs in its crds/ folder) moves over as the README says.
 */
import { cp, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startControlPlane, type ControlPlane } from '../../k8s/controlplane.js';
import { CHART, helmFor, render, type Doc } from './helm.js';

const NS = 'drawbridge';
const CRDS = ['accessroles', 'databases', 'databaseusers'].map((p) => `${p}.drawbridge.dev`);
const KEEP = 'helm.sh/resource-policy';
const ORDERS = `apiVersion: drawbridge.dev/v1alpha1
kind: Database
metadata: {name: orders, namespace: shop}
spec: {protocol: postgres, uri: 'postgres://orders-db.shop:5432/orders', auth: {type: passthrough}}
`;

let plane: ControlPlane;
let helm: (args: string[]) => Promise<string>;

const template = (...set: string[]): Promise<Doc[]> => render(helm, NS, set);
const crdsOf = (docs: Doc[]) => docs.filter((d) => d.kind === 'CustomResourceDefinition');

/** Resolves to helm's stderr when it fails, so a test can assert the message; throws when it succeeds. */
async function helmFails(args: string[]): Promise<string> {
  const err = (await helm(args).then(
    () => new Error(`helm ${args.join(' ')} succeeded`),
    (e: unknown) => e,
  )) as { stderr?: string };
  if (err.stderr === undefined) throw err;
  return err.stderr;
}

/** The drawbridge.dev CRDs the API server holds. */
async function serverCrds(): Promise<string[]> {
  const out = await plane.kubectl(['get', 'crd', '-o', 'name']);
  return out
    .split('\n')
    .filter((l) => l.endsWith('.drawbridge.dev'))
    .map((l) => l.replace('customresourcedefinition.apiextensions.k8s.io/', ''))
    .sort();
}

const crdJson = async (name: string) =>
  JSON.parse(await plane.kubectl(['get', 'crd', name, '-o', 'json'])) as {
    metadata: { annotations?: Record<string, string> };
    spec: { names: { shortNames: string[] } };
    status?: { conditions?: { type: string; reason?: string }[] };
  };

/**
 * Waits for the API server to delete the drawbridge.dev CRDs, doing what the README tells users: the
 * server's CRD cleanup lists a CRD's objects first, and right after a CRD update (the upgrade above
 * dropped its keep annotation) the list can fail with `storage is (re)initializing`; the server then
 * backs off for minutes (1 run in ~10 here stalled 30 s to over 200 s; Kubernetes 1.34). A write to a
 * stalled CRD re-queues its cleanup at once.
 */
async function crdsDeleted(): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (let nudge = 0; ; nudge++) {
    const left = await serverCrds();
    if (left.length === 0) return;
    if (Date.now() > deadline) throw new Error(`CRDs not deleted: ${left.join(', ')}`);
    for (const crd of left) {
      const json = await crdJson(crd).catch(() => undefined); // deleted meanwhile
      const cond = json?.status?.conditions?.find((c) => c.type === 'Terminating');
      if (cond?.reason !== 'InstanceDeletionFailed') continue;
      await plane
        .kubectl(['annotate', '--overwrite', 'crd', crd, `drawbridge.dev/cleanup-retry=${nudge}`])
        .catch(() => undefined); // deleted meanwhile
    }
    await new Promise((r) => setTimeout(r, 1_000));
  }
}

/** A copy of the chart to install as an older release; `edit` changes it first. */
async function chartCopy(name: string, edit: (dir: string) => Promise<void>): Promise<string> {
  const dir = path.join(plane.dir, name);
  await cp(CHART, dir, { recursive: true });
  await edit(dir);
  return dir;
}

beforeAll(async () => {
  plane = await startControlPlane();
  helm = helmFor(plane);
  await plane.kubectl(['create', 'namespace', NS]);
  await plane.kubectl(['create', 'namespace', 'shop']);
});

afterAll(async () => {
  await plane?.stop();
});

describe('charts/drawbridge CRD templates', () => {
  it('renders the three CRDs, kept on uninstall by default', async () => {
    const crds = crdsOf(await template());
    expect(crds.map((d) => d.metadata.name).sort()).toEqual(CRDS);
    for (const crd of crds) {
      expect(crd.metadata.annotations).toEqual({ [KEEP]: 'keep' });
      expect(crd.metadata.labels).toMatchObject({ 'app.kubernetes.io/managed-by': 'Helm' });
    }
  });

  it('renders no keep annotation with crds.keep=false and no CRD with crds.enabled=false', async () => {
    const unkept = crdsOf(await template('crds.keep=false'));
    expect(unkept).toHaveLength(3);
    for (const crd of unkept) expect(crd.metadata.annotations).toBeUndefined();
    const none = await template('crds.enabled=false');
    expect(crdsOf(none)).toEqual([]);
    expect(none.map((d) => d.kind)).toContain('Deployment');
    await helm(['lint', CHART, '--strict', '--set', 'crds.enabled=false']);
    await helm(['lint', CHART, '--strict', '--set', 'crds.keep=false']);
  });

  it('renders each CRD exactly as crds/ holds it, trait templates in descriptions included', async () => {
    const rendered = new Map(crdsOf(await template()).map((d) => [d.metadata.name, d]));
    const dir = path.resolve('crds');
    for (const file of await readdir(dir)) {
      const want = parse(await readFile(path.join(dir, file), 'utf8')) as Doc;
      const got = rendered.get(want.metadata.name)!;
      expect(got.spec, file).toEqual(want.spec);
    }
    expect(JSON.stringify(rendered.get('databaseusers.drawbridge.dev'))).toContain('{{traits.dbUsers}}');
  });

  it('refuses a crds value that is not a boolean or not known', async () => {
    for (const [value, field] of [
      ['crds.enabled=maybe', /crds\/enabled/],
      ['crds.kept=true', /kept/],
    ] as const) {
      const err = await render(helm, NS, [value]).then(
        () => '',
        (e: { stderr?: string }) => e.stderr ?? '',
      );
      expect(err).toMatch(/values don't meet the specifications of the schema/);
      expect(err).toMatch(field);
    }
  });
});

describe('the CRD lifecycle through helm', () => {
  it('an upgrade updates the CRDs and keeps the objects', async () => {
    // The previous chart version, told apart by a different short name.
    const older = await chartCopy('older', async (dir) => {
      const file = path.join(dir, 'templates/crds/drawbridge.dev_databases.yaml');
      const text = await readFile(file, 'utf8');
      expect(text).toContain('- drawdb\n');
      await writeFile(file, text.replace('- drawdb\n', '- olddb\n'));
    });
    await helm(['install', 'drawbridge', older, '-n', NS]);
    for (const crd of CRDS) {
      await plane.kubectl(['wait', '--for=condition=Established', `crd/${crd}`, '--timeout=60s']);
    }
    expect((await crdJson('databases.drawbridge.dev')).spec.names.shortNames).toEqual(['olddb']);
    await plane.kubectl(['apply', '-f', '-'], { input: ORDERS });

    await helm(['upgrade', 'drawbridge', CHART, '-n', NS]);
    expect((await crdJson('databases.drawbridge.dev')).spec.names.shortNames).toEqual(['drawdb']);
    expect(await plane.kubectl(['get', 'drawdb', '-n', 'shop', '-o', 'name'])).toContain('orders');
  });

  it('uninstall with crds.keep=true leaves the CRDs and every Database', async () => {
    await helm(['uninstall', 'drawbridge', '-n', NS]);
    expect(await plane.kubectl(['get', 'deploy', '-n', NS, '-o', 'name'])).toBe('');
    expect(await serverCrds()).toEqual(CRDS);
    expect(await plane.kubectl(['get', 'databases', '-n', 'shop', '-o', 'name'])).toContain('orders');
  });

  it('a new install adopts the kept CRDs', async () => {
    await helm(['install', 'drawbridge', CHART, '-n', NS]);
    const crd = await crdJson('databases.drawbridge.dev');
    expect(crd.metadata.annotations).toMatchObject({
      'meta.helm.sh/release-name': 'drawbridge',
      [KEEP]: 'keep',
    });
  });

  it('uninstall with crds.keep=false deletes the CRDs and their objects', async () => {
    await helm(['upgrade', 'drawbridge', CHART, '-n', NS, '--reuse-values', '--set', 'crds.keep=false']);
    expect((await crdJson('databases.drawbridge.dev')).metadata.annotations?.[KEEP]).toBeUndefined();
    await helm(['uninstall', 'drawbridge', '-n', NS]);
    await crdsDeleted();
    expect(await serverCrds()).toEqual([]);
  }, 240_000);

  it('crds.enabled=false installs no CRD', async () => {
    await helm(['install', 'drawbridge', CHART, '-n', NS, '--set', 'crds.enabled=false']);
    expect(await serverCrds()).toEqual([]);
    expect(await plane.kubectl(['get', 'deploy', '-n', NS, '-o', 'name'])).toContain('drawbridge-controller');
    await helm(['uninstall', 'drawbridge', '-n', NS]);
  });

  it('moves a release of the old chart (CRDs in crds/) over once the CRDs are labelled', async () => {
    const old = await chartCopy('crds-folder', async (dir) => {
      await rm(path.join(dir, 'templates/crds'), { recursive: true });
      await mkdir(path.join(dir, 'crds'));
      await cp(path.resolve('crds'), path.join(dir, 'crds'), { recursive: true });
      // Nor did it have crds values, which is why the README says --reset-then-reuse-values.
      const values = path.join(dir, 'values.yaml');
      await writeFile(values, (await readFile(values, 'utf8')).replace(/^crds:\n( .*\n)+/m, ''));
    });
    await helm(['install', 'drawbridge', old, '-n', NS]);
    expect(await serverCrds()).toEqual(CRDS);
    const upgrade = ['upgrade', 'drawbridge', CHART, '-n', NS, '--reset-then-reuse-values'];
    expect(await helmFails(upgrade)).toMatch(/invalid ownership metadata/);
    expect(await helmFails(['upgrade', 'drawbridge', CHART, '-n', NS, '--reuse-values'])).toMatch(
      /nil pointer evaluating interface \{\}\.enabled/,
    );
    // The README's commands.
    await plane.kubectl(['label', 'crd', ...CRDS, 'app.kubernetes.io/managed-by=Helm']);
    await plane.kubectl([
      'annotate',
      'crd',
      ...CRDS,
      'meta.helm.sh/release-name=drawbridge',
      `meta.helm.sh/release-namespace=${NS}`,
    ]);
    await helm(upgrade);
    expect((await crdJson('databases.drawbridge.dev')).metadata.annotations?.[KEEP]).toBe('keep');
  });
});
