// Process and HTTP helpers of the control plane (controlplane.ts): reaping, logs, probing (stopping:
// support/terminate.ts; ports: support/ports.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

export interface Proc {
  name: string;
  child: ChildProcess;
  logPath: string;
  exited: boolean;
  /** Watches this Node process and kills the child if we die without running stop(). */
  reaper: ChildProcess | undefined;
}

/**
 * A detached shell that outlives us: if this Node process is SIGKILLed (a vitest worker torn down,
 * CI timeout) no 'exit' handler runs, and an orphaned apiserver would eat the CI machine's 2 cores.
 */
export function reaper(childPid: number | undefined, dir: string): ChildProcess | undefined {
  // No pid means spawn failed; and `kill -9 0` would hit our whole process group.
  if (!childPid) return undefined;
  // Polls its own parent pid (field 4 of /proc/self/stat) rather than `kill -0`: a killed parent
  // can linger as a zombie that still answers kill -0, but its children are re-parented at once.
  const script =
    'while [ "$(cut -d" " -f4 /proc/$$/stat)" = "$1" ]; do sleep 1; done; kill -9 "$2" 2>/dev/null; rm -rf "$3"';
  const args = ['-c', script, 'reaper', String(process.pid), String(childPid), dir];
  const r = spawn('sh', args, { detached: true, stdio: 'ignore' });
  r.unref();
  return r;
}

export function logTail(file: string, lines = 40): string {
  try {
    return readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Status code of a GET; plain http for etcd, mutual TLS for the apiserver. */
export function get(url: string, tls?: { ca: string; cert: string; key: string }): Promise<number> {
  return new Promise((resolve, reject) => {
    const client = url.startsWith('https:') ? https : http;
    const req = client.get(url, { ...tls, agent: false, timeout: 2_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}
