import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { FastHistogram } from '../../../src/agent/fast-histogram.js';

const BOUNDS = [0.001, 0.01, 0.1, 1];

describe('FastHistogram', () => {
  it("exposes exactly what prom-client's Histogram would for the same observations", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    for (const r of [ours, theirs]) r.setDefaultLabels({ database: 'shop/orders' });
    const fast = new FastHistogram(ours, 'x_seconds', 'help', 'protocol', BOUNDS);
    const reference = new Histogram({
      name: 'x_seconds',
      help: 'help',
      labelNames: ['protocol'],
      buckets: BOUNDS,
      registers: [theirs],
    });
    const values = [0, 0.001, 0.0011, 0.05, 0.1, 0.5, 1, 3, 100];
    for (const [protocol, scale] of [
      ['redis', 1],
      ['postgres', 0.5],
    ] as const) {
      const series = fast.seriesFor(protocol);
      for (const v of values) {
        series.observe(v * scale);
        reference.observe({ protocol }, v * scale);
      }
    }
    // Samples with their labels sorted: label order carries no meaning in the exposition format.
    const lines = async (r: Registry) =>
      (await r.metrics())
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => {
          const [, name, labels, value] = /^(\w+)\{(.*)\} (\S+)$/.exec(l)!;
          return `${name}{${labels!.split(',').sort().join(',')}} ${value}`;
        })
        .sort();
    expect(await lines(ours)).toEqual(await lines(theirs));
  });
});
