// The child processes of a test Redis Cluster: one redis-server per node, redis-cli runs, and a reaper
// so that no node outlives the test process however it ends.
import { type ChildProcess, spawn } from 'node:child_process';

export interface ClusterNode {
  readonly port: number;
  readonly dir: string;
  readonly logPath: string;
  child: ChildProcess;
  exited: boolean;
}

export function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.once('error', reject);
    child.once('close', (code) => {
      // redis-cli prints server errors on stdout with exit code 0 in one-shot mode; treat both as failures.
      if (code !== 0 || /^(ERR|\(error\))/m.test(stdout)) {
        reject(
          new Error(
            `${cmd} ${args.filter((a) => !a.includes('secret')).join(' ')} → ${code}: ${stderr}${stdout}`,
          ),
        );
      } else resolve(stdout);
    });
  });
}

/**
 * One detached shell that SIGKILLs every node once this process is gone, even when no 'exit' handler
 * runs (a vitest worker killed on timeout): six orphaned redis-servers would otherwise keep a CI box busy.
 */
export function reaperFor(pids: (number | undefined)[]): ChildProcess | undefined {
  const known = pids.filter((p): p is number => !!p);
  if (known.length === 0) return undefined;
  const script = 'p=$1; shift; while kill -0 "$p" 2>/dev/null; do sleep 1; done; kill -9 "$@" 2>/dev/null';
  const r = spawn('sh', ['-c', script, 'reaper', String(process.pid), ...known.map(String)], {
    detached: true,
    stdio: 'ignore',
  });
  r.unref();
  return r;
}
