// How many worker processes an agent starts when not told: the CPUs its container may use. Kubernetes
// turns a container's CPU limit into a CFS quota on its cgroup (v2: `cpu.max` "QUOTA PERIOD"; v1:
// `cpu.cfs_quota_us` / `cpu.cfs_period_us`). os.availableParallelism() sees the node's CPUs (or the
// cpuset), never the quota: a pod limited to 2 CPUs on a 64-core node would start 64 workers that the
// quota then throttles. A nested cgroup may sit under a tighter parent, so every ancestor counts.
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';

const CGROUP_MOUNT = 'sys/fs/cgroup';

/**
 * Whole CPUs the tightest quota from this process's cgroup up to the root allows (at least 1), or
 * undefined when no quota applies. `root` is `/` except in tests, which lay out fake files.
 */
export function cgroupCpuLimit(root = '/'): number | undefined {
  const membership = read(root, 'proc/self/cgroup');
  if (membership === undefined) return undefined;
  const lines = membership.split('\n').map((l) => l.split(':'));
  // cgroup v2 (unified): one "0::/path" line and cgroup.controllers at the mount.
  const unified = lines.find((f) => f[0] === '0' && f[1] === '');
  if (unified && existsSync(path.join(root, CGROUP_MOUNT, 'cgroup.controllers'))) {
    return tightest(root, CGROUP_MOUNT, unified.slice(2).join(':'), (dir) => {
      const [quota, period] = (read(root, path.join(dir, 'cpu.max')) ?? '').trim().split(/\s+/);
      return cpus(quota, period);
    });
  }
  // cgroup v1 (or hybrid): the line naming the cpu controller, mounted at cpu/ or cpu,cpuacct/.
  const v1 = lines.find((f) => f[1]?.split(',').includes('cpu'));
  if (!v1) return undefined;
  const mount = ['cpu', 'cpu,cpuacct']
    .map((m) => path.join(CGROUP_MOUNT, m))
    .find((m) => existsSync(path.join(root, m)));
  if (!mount) return undefined;
  return tightest(root, mount, v1.slice(2).join(':'), (dir) =>
    cpus(read(root, path.join(dir, 'cpu.cfs_quota_us')), read(root, path.join(dir, 'cpu.cfs_period_us'))),
  );
}

/** The default worker count: the cgroup's CPU quota, else the CPUs this process may run on. */
export function defaultWorkers(root = '/'): number {
  return Math.min(cgroupCpuLimit(root) ?? Infinity, availableParallelism());
}

/**
 * The smallest limit over the cgroup directory of `cgroupPath` and its ancestors under `mount`. In a
 * container the mount often shows only the container's own cgroup (a cgroup namespace, or a bind
 * mount), so the path from /proc/self/cgroup may not exist there: the mount root counts too.
 */
function tightest(
  root: string,
  mount: string,
  cgroupPath: string,
  limitOf: (dir: string) => number | undefined,
): number | undefined {
  let best: number | undefined;
  for (let p = path.posix.normalize(`/${cgroupPath}`); ; p = path.posix.dirname(p)) {
    const limit = limitOf(path.join(mount, p));
    if (limit !== undefined) best = Math.min(best ?? Infinity, limit);
    if (p === '/') return best;
  }
}

/** Whole CPUs (rounded down: a worker per CPU the quota pays for, at least one), undefined for "max" / -1. */
function cpus(quotaText: string | undefined, periodText: string | undefined): number | undefined {
  const quota = Number(quotaText);
  const period = Number(periodText);
  if (!(quota > 0) || !(period > 0)) return undefined;
  return Math.max(1, Math.floor(quota / period));
}

function read(root: string, file: string): string | undefined {
  try {
    return readFileSync(path.join(root, file), 'utf8');
  } catch {
    return undefined;
  }
}
