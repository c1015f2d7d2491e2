// A standalone agent's config file, read and watched: the AgentConfig's spec and the state its other
// documents make. The one process that reads it parses and validates it (YAML, the API's zod schemas);
// an agent of several workers does that in its primary, and each worker takes the result from there
// (workers/worker.ts), so no worker loads the parser or the schemas (~9 MB of RSS each).
// The file is re-read when it changes; a broken edit is reported and the last good config stays.
import { accessSync, closeSync, constants, openSync, statSync, unwatchFile, watchFile } from 'node:fs';
import { dirname } from 'node:path';
import { secretValues } from '../api/agent-config.js';
import { type ConfigBundle, loadConfigFile } from '../api/config.js';
import { DrawbridgeError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { ConfigSource, StandaloneConfig } from './standalone.js';
import type { StateSnapshot } from './state.js';

export function snapshotOf(bundle: ConfigBundle, source: string): StateSnapshot {
  const agent = bundle.agent;
  if (!agent) throw new Error(`${source}: no AgentConfig document; add one (kind: AgentConfig)`);
  const database = bundle.databases.find((d) => d.metadata.name === agent.spec.database)!;
  return {
    database,
    roles: bundle.roles,
    users: bundle.users,
    secrets: new Map(bundle.secrets.map((s) => [s.metadata.name, secretValues(s)])),
  };
}

async function readConfig(path: string): Promise<StandaloneConfig> {
  const bundle = await loadConfigFile(path);
  const state = snapshotOf(bundle, path);
  return { spec: bundle.agent!.spec, state };
}

/**
 * Checked once at start (the path is read only then): a log the agent cannot open would let it serve,
 * then hold every session for stallTimeout and end it (required) or drop every event (best-effort).
 * A FIFO or device is only checked for write permission: opening a FIFO blocks until it has a reader.
 */
export function checkAuditPath(file: string, source: string): void {
  if (file === '-') return;
  try {
    const stat = statSync(file, { throwIfNoEntry: false });
    if (stat && !stat.isFile()) accessSync(file, constants.W_OK);
    else closeSync(openSync(file, 'a', 0o600));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? errorMessage(err);
    const fix =
      code === 'ENOENT'
        ? `create its directory (mkdir -p ${dirname(file)})`
        : "let the agent's user write it";
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      `${source}: spec.audit.path ${file}: cannot open it to append (${code})`,
      `${fix}, or set spec.audit.path to another file ("-" for stdout)`,
    );
  }
}

/** The config in `path` now, then each good edit of it (a broken one is logged and skipped). */
export async function watchConfigFile(path: string, log: Logger): Promise<ConfigSource> {
  const initial = await readConfig(path);
  checkAuditPath(initial.spec.audit.path, path);
  const listeners: ((next: StandaloneConfig) => void)[] = [];
  const reload = async () => {
    try {
      const next = await readConfig(path);
      for (const listener of listeners) listener(next);
    } catch (err) {
      log.error({ path, error: errorMessage(err) }, 'config reload failed; keeping the previous config');
    }
  };
  // Polling survives editors and ConfigMap mounts that replace the file instead of writing it.
  watchFile(path, { interval: 1000 }, (cur, prev) => {
    if (cur.mtimeMs !== prev.mtimeMs || cur.size !== prev.size) void reload();
  });
  return {
    path,
    initial,
    onUpdate: (listener) => void listeners.push(listener),
    stop: () => unwatchFile(path),
  };
}
