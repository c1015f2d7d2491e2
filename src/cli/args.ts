// Flag values shared by `drawbridge` and `kubectl db`, checked when the line is parsed: a bad value is an
// error naming the flag, never a zero or NaN that runs on (a timeout of 0, a probe every millisecond).
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { InvalidArgumentError } from 'commander';
import { DURATION, parseDuration } from '../api/runtime.js';
import { DrawbridgeError } from '../errors.js';

/** A parser of a duration flag of at least `min` (e.g. "1s"), to milliseconds. */
export function durationArg(min: string): (text: string) => number {
  const minMs = parseDuration(min);
  return (text) => {
    const ms = DURATION.test(text) ? parseDuration(text) : NaN;
    if (!(ms >= minMs))
      throw new InvalidArgumentError(`use a duration of at least ${min}, such as 30s, 2m or 1h30m`);
    return ms;
  };
}

/**
 * Loads `file`, else what kubectl would: $KUBECONFIG, ~/.kube/config, the pod's service account. With
 * none of them client-node falls back to http://localhost:8080 and the first request fails with
 * "HTTP protocol is not allowed": say what is missing instead.
 */
export function loadKubeConfigInto(kc: KubeConfig, file?: string, env = process.env): void {
  if (file) return kc.loadFromFile(file);
  const home = path.join(env.HOME ?? os.homedir(), '.kube', 'config');
  if (!env.KUBECONFIG && !existsSync(home) && !env.KUBERNETES_SERVICE_HOST) {
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      `no kubeconfig: $KUBECONFIG is unset and ${home} does not exist`,
      'pass --kubeconfig FILE or set KUBECONFIG to the file kubectl uses',
    );
  }
  kc.loadFromDefault();
}
