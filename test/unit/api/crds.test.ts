import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { renderCrds } from '../../../src/api/crds.js';

const dir = join(import.meta.dirname, '../../../crds');

describe('crds/', () => {
  it('matches the zod schemas (run `make crds` when this fails)', () => {
    const rendered = renderCrds();
    expect(readdirSync(dir).sort()).toEqual([...rendered.keys()].sort());
    for (const [file, text] of rendered) expect(readFileSync(join(dir, file), 'utf8'), file).toBe(text);
  });

  it('are structural: no additionalProperties beside properties, no type unions', () => {
    const walk = (node: unknown, path: string): void => {
      if (!node || typeof node !== 'object') return;
      const n = node as Record<string, unknown>;
      if (n.properties) expect(n.additionalProperties, path).toBeUndefined();
      // The one union a structural schema allows: int-or-string (quantities).
      if (!n['x-kubernetes-int-or-string']) expect(n.anyOf, path).toBeUndefined();
      expect(n.oneOf, path).toBeUndefined();
      expect(n.$schema, path).toBeUndefined();
      for (const [k, v] of Object.entries(n)) walk(v, `${path}.${k}`);
    };
    for (const [file, text] of renderCrds()) walk(parse(text), file);
  });

  it('describe every field, so `kubectl explain` is useful', () => {
    const missing: string[] = [];
    const walk = (node: Record<string, unknown>, path: string): void => {
      for (const [name, child] of Object.entries(
        (node.properties ?? {}) as Record<string, Record<string, unknown>>,
      )) {
        if (!(name === 'metadata' && path.endsWith('.yaml')) && !child.description)
          missing.push(`${path}.${name}`);
        walk(child, `${path}.${name}`);
        if (child.items) walk(child.items as Record<string, unknown>, `${path}.${name}[]`);
      }
    };
    for (const [file, text] of renderCrds()) walk(parse(text).spec.versions[0].schema.openAPIV3Schema, file);
    expect(missing, 'fields without a description').toEqual([]);
  });

  it('carries enum and pattern validation for the API server', () => {
    const db = parse(renderCrds().get('drawbridge.dev_databases.yaml')!);
    const spec = db.spec.versions[0].schema.openAPIV3Schema.properties.spec;
    expect(spec.properties.protocol.enum).toEqual(['postgres', 'redis']);
    expect(spec.properties.auth.properties.type.enum).toContain('elasticache-iam');
    expect(spec.properties.uri.pattern).toBeTypeOf('string');
    expect(spec.required).toEqual(expect.arrayContaining(['protocol', 'uri']));
  });
});
