// drawbridge_build_info: which version runs where, the metric dashboards join other series on.
import { readFileSync } from 'node:fs';
import { Gauge, type Registry } from 'prom-client';

/** package.json's version: one level up from dist/src, two from src (the image keeps dist/src beside package.json). */
function version(): string {
  for (const rel of ['../../package.json', '../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as {
        name?: string;
        version?: string;
      };
      if (pkg.name === 'drawbridge' && pkg.version) return pkg.version;
    } catch {
      // Not at this depth; try the next.
    }
  }
  return 'unknown';
}

export const VERSION = version();

export function registerBuildInfo(registry: Registry, component: 'agent' | 'controller'): void {
  new Gauge({
    name: 'drawbridge_build_info',
    help: 'Always 1; labels say which Drawbridge version and Node.js run this component',
    labelNames: ['version', 'node_version', 'component'],
    registers: [registry],
    // An agent's worker processes each report it; summed, it would not be 1.
    aggregator: 'first',
  }).set({ version: VERSION, node_version: process.version, component }, 1);
}
