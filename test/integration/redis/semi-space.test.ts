// `drawbridge agent --semi-space-mb N` (what the controller renders from spec.agent.semiSpaceMB): the
// agent, started as the launcher line starts it (`node --max-semi-space-size=2`), replaces itself in
// place (same pid) with Node bounded at N, and its workers run with N too; asked for the bound it
// already has, it runs as started. Read from the kernel (/proc/PID/cmdline), the options V8 got.
import { readFile, rm } from 'node:fs/promises';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startWorkersAgent } from '../../support/agent-workers.js';
import { type RedisServer, ioredisAt, issuePeopleTls, startRedis } from '../../support/redis.js';
import { redisDocs } from './fixture.js';

const LAUNCHER = ['--max-semi-space-size=2'];
let redis: RedisServer;
let pki: Awaited<ReturnType<typeof issuePeopleTls>>;
const clients = new Set<Redis>();

beforeAll(async () => {
  redis = await startRedis();
  pki = await issuePeopleTls(['alice'], 'cache agent', 'drawbridge-semi-space-pki-');
}, 30_000);
afterAll(async () => {
  clients.forEach((c) => c.disconnect());
  await redis?.stop();
  if (pki) await rm(pki.dir, { recursive: true, force: true });
});

const startAgent = (args: string[], env: Record<string, string> = {}) =>
  startWorkersAgent({
    database: 'cache',
    docs: redisDocs(redis),
    tls: pki.agentTls,
    workers: 2,
    args,
    nodeArgs: LAUNCHER,
    env,
  });

const cmdline = async (pid: number) => (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0');
const semiSpaceFlags = (argv: string[]) => argv.filter((a) => a.startsWith('--max-semi-space-size'));

it('runs the primary and its workers with the bound asked for, in place of the launcher line', async () => {
  const agent = await startAgent(['--semi-space-mb', '8']);
  try {
    // The pid the test spawned is the agent: replaced in place, not a child started beside it.
    const primary = await cmdline(agent.child.pid!);
    expect(semiSpaceFlags(primary), primary.join(' ')).toEqual(['--max-semi-space-size=8']);
    expect(primary).toContain('--semi-space-mb');
    const workers = await agent.workerPids();
    expect(workers).toHaveLength(2);
    for (const pid of workers)
      expect(semiSpaceFlags(await cmdline(pid))).toEqual(['--max-semi-space-size=8']);
    const c = ioredisAt(agent.port, pki.tls('alice'), clients, { username: 'app', password: 'x' });
    await c.set('semi-space', 'v');
    expect(await c.get('semi-space')).toBe('v');
    c.disconnect();
  } finally {
    expect(await agent.stop()).toBe(0);
  }
}, 60_000);

it('runs as started when asked (DRAWBRIDGE_SEMI_SPACE_MB) for the bound it already has', async () => {
  const agent = await startAgent([], { DRAWBRIDGE_SEMI_SPACE_MB: '2' });
  try {
    const primary = await cmdline(agent.child.pid!);
    expect(primary.slice(1, 1 + LAUNCHER.length)).toEqual(LAUNCHER);
    expect(semiSpaceFlags(primary)).toEqual(LAUNCHER);
    for (const pid of await agent.workerPids()) expect(semiSpaceFlags(await cmdline(pid))).toEqual(LAUNCHER);
  } finally {
    expect(await agent.stop()).toBe(0);
  }
}, 60_000);
