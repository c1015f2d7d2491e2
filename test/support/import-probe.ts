// Loaded with `--import` into an agent the tests start (node:cluster passes the flag on to its workers):
// every process that resolves a module of a package named in $DRAWBRIDGE_IMPORT_PROBE_PACKAGES (comma
// separated) appends "PID PACKAGE", once per package, to the file $DRAWBRIDGE_IMPORT_PROBE_FILE. A test
// then knows which of the agent's processes loaded which package, however the import was reached
// (static, dynamic, a dependency's). An entry starting with `/` names a part of the module's path
// instead (`/dist/src/engines/redis/`: any module of the agent's own Redis engine).
import { appendFileSync } from 'node:fs';
import * as nodeModule from 'node:module';

// Node >= 22.15 (the project's Node 24); @types/node here predates the synchronous hooks.
type Resolved = { url: string };
type Resolve = (specifier: string, context: unknown) => Resolved;
const { registerHooks } = nodeModule as unknown as {
  registerHooks?(hooks: { resolve(specifier: string, context: unknown, next: Resolve): Resolved }): void;
};
if (!registerHooks) throw new Error(`the import probe needs Node >= 22.15 (this is ${process.version})`);

const packages = (process.env.DRAWBRIDGE_IMPORT_PROBE_PACKAGES ?? '').split(',').filter(Boolean);
const file = process.env.DRAWBRIDGE_IMPORT_PROBE_FILE;
const seen = new Set<string>();

if (file) {
  registerHooks({
    resolve(specifier, context, nextResolve) {
      const resolved = nextResolve(specifier, context);
      const pkg = packages.find((p) => resolved.url.includes(p.startsWith('/') ? p : `/node_modules/${p}/`));
      if (pkg && !seen.has(pkg)) {
        seen.add(pkg);
        appendFileSync(file, `${process.pid} ${pkg}\n`);
      }
      return resolved;
    },
  });
}
