// The default worker count from cgroup files laid out in a temp dir as the kernel shows them: v2
// (cpu.max, nested, in a cgroup namespace), v1 (cfs quota/period, cpu or cpu,cpuacct mount), hybrid.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { cgroupCpuLimit, defaultWorkers } from '../../../src/agent/workers/cpu-quota.js';

let root: string | undefined;
afterEach(async () => {
  if (root) await rm(root, { recursive: true, force: true });
  root = undefined;
});

/** A fake root with these files (paths relative to /). */
async function layout(files: Record<string, string>): Promise<string> {
  root = await mkdtemp(path.join(tmpdir(), 'drawbridge-cgroup-'));
  for (const [file, text] of Object.entries(files)) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await writeFile(path.join(root, file), text);
  }
  return root;
}

const V2 = 'sys/fs/cgroup';
const POD = '/kubepods/burstable/pod1/ctr';

describe('cgroupCpuLimit', () => {
  it.each([
    ['200000 100000', 2],
    ['150000 100000', 1],
    ['50000 100000', 1],
    ['400000 100000', 4],
    ['max 100000', undefined],
  ])('cgroup v2 cpu.max "%s" → %s', async (cpuMax, want) => {
    const r = await layout({
      'proc/self/cgroup': `0::${POD}\n`,
      [`${V2}/cgroup.controllers`]: 'cpu memory\n',
      [`${V2}${POD}/cpu.max`]: `${cpuMax}\n`,
    });
    expect(cgroupCpuLimit(r)).toBe(want);
  });

  it('v2: a tighter parent wins over the container', async () => {
    const r = await layout({
      'proc/self/cgroup': `0::${POD}\n`,
      [`${V2}/cgroup.controllers`]: 'cpu\n',
      [`${V2}${POD}/cpu.max`]: '400000 100000\n',
      [`${V2}/kubepods/burstable/pod1/cpu.max`]: '300000 100000\n',
      [`${V2}/kubepods/cpu.max`]: 'max 100000\n',
    });
    expect(cgroupCpuLimit(r)).toBe(3);
  });

  it('v2 in a cgroup namespace: the path reads "/" and the mount root is the container', async () => {
    const r = await layout({
      'proc/self/cgroup': '0::/\n',
      [`${V2}/cgroup.controllers`]: 'cpu\n',
      [`${V2}/cpu.max`]: '200000 100000\n',
    });
    expect(cgroupCpuLimit(r)).toBe(2);
  });

  it('v2 with the host path absent from the mount (bind-mounted cgroup): the mount root counts', async () => {
    const r = await layout({
      'proc/self/cgroup': `0::${POD}\n`,
      [`${V2}/cgroup.controllers`]: 'cpu\n',
      [`${V2}/cpu.max`]: '300000 100000\n',
    });
    expect(cgroupCpuLimit(r)).toBe(3);
  });

  it.each([
    ['cpu', 'cpu,cpuacct'],
    ['cpu,cpuacct', 'cpu,cpuacct'],
    ['cpu', 'cpu'],
  ])('cgroup v1 (controller %s, mounted at %s): cfs_quota_us / cfs_period_us', async (ctl, mount) => {
    const r = await layout({
      'proc/self/cgroup': `5:memory:${POD}\n3:${ctl}:${POD}\n0::${POD}\n`,
      [`${V2}/${mount}${POD}/cpu.cfs_quota_us`]: '250000\n',
      [`${V2}/${mount}${POD}/cpu.cfs_period_us`]: '100000\n',
    });
    expect(cgroupCpuLimit(r)).toBe(2);
  });

  it('v1 quota -1 (no limit), and no cgroup files at all, mean no limit', async () => {
    const r = await layout({
      'proc/self/cgroup': `2:cpu,cpuacct:/\n`,
      [`${V2}/cpu,cpuacct/cpu.cfs_quota_us`]: '-1\n',
      [`${V2}/cpu,cpuacct/cpu.cfs_period_us`]: '100000\n',
    });
    expect(cgroupCpuLimit(r)).toBeUndefined();
    await rm(r, { recursive: true });
    root = await mkdtemp(path.join(tmpdir(), 'drawbridge-cgroup-'));
    expect(cgroupCpuLimit(root)).toBeUndefined();
  });

  it('hybrid (v1 cpu controller, v2 unified mounted elsewhere): reads v1', async () => {
    const r = await layout({
      'proc/self/cgroup': `1:cpu:/\n0::/\n`,
      [`${V2}/unified/cgroup.controllers`]: '\n',
      [`${V2}/cpu/cpu.cfs_quota_us`]: '100000\n',
      [`${V2}/cpu/cpu.cfs_period_us`]: '100000\n',
    });
    expect(cgroupCpuLimit(r)).toBe(1);
  });
});

describe('defaultWorkers', () => {
  it('is the quota, never more than the CPUs this process may run on', async () => {
    const r = await layout({
      'proc/self/cgroup': '0::/\n',
      [`${V2}/cgroup.controllers`]: 'cpu\n',
      [`${V2}/cpu.max`]: '1000000 100000\n',
    });
    expect(defaultWorkers(r)).toBe(Math.min(10, availableParallelism()));
    await writeFile(path.join(r, V2, 'cpu.max'), '100000 100000\n');
    expect(defaultWorkers(r)).toBe(1);
    await writeFile(path.join(r, V2, 'cpu.max'), 'max 100000\n');
    expect(defaultWorkers(r)).toBe(availableParallelism());
  });
});
