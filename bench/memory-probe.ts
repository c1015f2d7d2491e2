// Loaded with `--import` into the processes the benches measure for idle memory (the agent, the bare
// Node pipe): on SIGUSR2 the process writes its process.memoryUsage() to a file named by its pid
// (memoryProbeFile in bench/idle-memory.ts), so the bench can say where the bytes are — V8's heap,
// memory outside it (external, of which ArrayBuffers), and the rest of RSS (code, OpenSSL, malloc).
// BENCH_MEMORY_GC=1 (bench/start-memory.ts): a full GC first, so start-up garbage not yet collected
// does not count, and the file also lists the modules the process resolved (Node >= 22.15).
import { renameSync, writeFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

const withGc = process.env.BENCH_MEMORY_GC === '1';
const modules = new Set<string>();
type Resolve = (specifier: string, context: unknown) => { url: string };
const { registerHooks } = nodeModule as unknown as {
  registerHooks?(hooks: { resolve(s: string, c: unknown, next: Resolve): { url: string } }): void;
};
if (withGc) {
  setFlagsFromString('--expose-gc');
  registerHooks?.({
    resolve(specifier, context, next) {
      const resolved = next(specifier, context);
      modules.add(resolved.url);
      return resolved;
    },
  });
}
const gc = withGc ? (runInNewContext('gc') as () => void) : undefined;

process.on('SIGUSR2', () => {
  gc?.();
  const file = path.join(os.tmpdir(), `drawbridge-memory-${process.pid}.json`);
  const usage = { ...process.memoryUsage(), ...(withGc ? { modules: [...modules] } : {}) };
  // Renamed into place: the bench never reads half a file.
  writeFileSync(`${file}.tmp`, JSON.stringify(usage));
  renameSync(`${file}.tmp`, file);
});
