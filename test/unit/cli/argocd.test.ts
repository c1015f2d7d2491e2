// gitops/argocd/argocd-cm.yaml carries health.lua unchanged, once per kind.
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';

const dir = new URL('../../../gitops/argocd/', import.meta.url);

describe('gitops/argocd', () => {
  it('argocd-cm.yaml holds health.lua for Database, AccessRole and DatabaseUser', async () => {
    const script = await readFile(new URL('health.lua', dir), 'utf8');
    const cm = parse(await readFile(new URL('argocd-cm.yaml', dir), 'utf8')) as {
      data: Record<string, string>;
    };
    expect(Object.keys(cm.data).sort()).toEqual(
      ['AccessRole', 'Database', 'DatabaseUser'].map(
        (k) => `resource.customizations.health.drawbridge.dev_${k}`,
      ),
    );
    for (const value of Object.values(cm.data)) expect(value).toBe(script);
  });
});
