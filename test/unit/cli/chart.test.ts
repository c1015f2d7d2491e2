// Fast checks on files that ship beside the code: the chart's CRD templates are the generated ones,
// and the e2e scenario's access rules are valid under the same schemas the controller uses.
import { readFile, readdir } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import { describe, expect, it } from 'vitest';
import { AccessRole, DatabaseUser } from '../../../src/api/access.js';
import { renderCrds } from '../../../src/api/crds.js';
import { helmCrdTemplates } from '../../../src/api/crds-helm.js';
import { agentPodShape } from '../../../src/api/database-agent.js';

const root = new URL('../../../', import.meta.url);

describe('charts/drawbridge', () => {
  it('ships the generated CRDs as templates, not in crds/ (run make crds when this fails)', async () => {
    // A chart crds/ folder beside the templates would make Helm create every CRD twice and fail.
    await expect(readdir(new URL('charts/drawbridge/crds/', root))).rejects.toMatchObject({ code: 'ENOENT' });
    const want = helmCrdTemplates(renderCrds());
    const dir = new URL('charts/drawbridge/templates/crds/', root);
    expect((await readdir(dir)).sort()).toEqual([...want.keys()].sort());
    for (const [file, text] of want) expect(await readFile(new URL(file, dir), 'utf8'), file).toBe(text);
  });

  it('values.schema.json knows every agents.pod key the controller accepts', async () => {
    const schema = JSON.parse(await readFile(new URL('charts/drawbridge/values.schema.json', root), 'utf8'));
    expect(Object.keys(schema.properties.agents.properties.pod.properties).sort()).toEqual(
      Object.keys(agentPodShape).sort(),
    );
  });
});

describe('test/e2e/access.yaml', () => {
  it('holds valid AccessRoles and DatabaseUsers', async () => {
    const docs = parseAllDocuments(await readFile(new URL('test/e2e/access.yaml', root), 'utf8')).map(
      (d) => d.toJS() as { kind: string },
    );
    const schemas = { AccessRole, DatabaseUser } as const;
    const ours = docs.filter((d): d is { kind: keyof typeof schemas } => d.kind in schemas);
    expect(ours.map((d) => d.kind).sort()).toEqual([
      'AccessRole',
      'AccessRole',
      'DatabaseUser',
      'DatabaseUser',
    ]);
    for (const doc of ours) expect(() => schemas[doc.kind].parse(doc)).not.toThrow();
  });
});
