// The chart's alert rules and dashboard only name metrics the agent and the controller export, so a
// renamed metric cannot leave an alert silently matching nothing.
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { AgentMetrics } from '../../../src/agent/metrics.js';
import { ControllerMetrics } from '../../../src/operator/metrics.js';

const files = new URL('../../../charts/drawbridge/files/', import.meta.url);

async function exported(): Promise<Set<string>> {
  const names = new Set<string>();
  for (const registry of [new AgentMetrics().registry, new ControllerMetrics(false).registry]) {
    for (const m of await registry.getMetricsAsJSON()) {
      names.add(m.name);
      if (String(m.type) === 'histogram')
        for (const s of ['_bucket', '_count', '_sum']) names.add(m.name + s);
    }
  }
  return names;
}

const used = (text: string) => [...new Set(text.match(/drawbridge_[a-z_]+/g) ?? [])].sort();

describe('charts/drawbridge/files', () => {
  it('alerts.yaml: well-formed rules naming only exported metrics', async () => {
    const text = await readFile(new URL('alerts.yaml', files), 'utf8');
    const groups = parse(text) as { name: string; rules: Record<string, unknown>[] }[];
    const rules = groups.flatMap((g) => g.rules);
    expect(rules.length).toBeGreaterThan(5);
    for (const r of rules) {
      expect(r, String(r.alert)).toMatchObject({
        alert: expect.stringMatching(/^Drawbridge[A-Za-z]+$/),
        expr: expect.any(String),
        for: expect.stringMatching(/^\d+[mh]$/),
        labels: { severity: expect.stringMatching(/^(critical|warning|info)$/) },
        annotations: { summary: expect.any(String), description: expect.any(String) },
      });
    }
    const names = await exported();
    expect(used(text).filter((n) => !names.has(n))).toEqual([]);
  });

  it('dashboard.json: unique panel ids, every query on exported metrics', async () => {
    const text = await readFile(new URL('dashboard.json', files), 'utf8');
    const dash = JSON.parse(text) as { uid: string; panels: { id: number; targets: { expr: string }[] }[] };
    expect(dash.uid).toBe('drawbridge');
    expect(new Set(dash.panels.map((p) => p.id)).size).toBe(dash.panels.length);
    const names = await exported();
    expect(used(text).filter((n) => !names.has(n))).toEqual([]);
    expect(used(text)).toEqual(
      expect.arrayContaining(['drawbridge_sessions_active', 'drawbridge_controller_queue_depth']),
    );
  });
});
