// An agent of two workers whose TLS key is not a key: each worker dies as it starts. The primary
// restarts them with growing pauses, then gives up and exits 1, so the kubelet restarts the container
// and the pod shows the crash loop (a primary restarting them forever would only answer 503 on
// /healthz, and nothing above it would see why). And an agent whose port is taken says so and how to fix it.
import { spawn } from 'node:child_process';
import { type Server, createServer } from 'node:net';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { writeAgentConfig } from '../../support/agent.js';
import { freePort } from '../../support/ports.js';
import { type RedisServer, issuePeopleTls, startRedis } from '../../support/redis.js';
import { redisDocs } from './fixture.js';

const CLI = path.resolve('dist/src/cli/drawbridge.js');
let redis: RedisServer;
let dir: string;

beforeAll(async () => {
  redis = await startRedis();
  dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-crashloop-'));
}, 30_000);
afterAll(async () => {
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

it('exits 1 once every worker keeps dying at start, naming why', async () => {
  const pki = await issuePeopleTls(['alice'], 'cache agent', 'drawbridge-crashloop-pki-');
  const listen = `127.0.0.1:${await freePort()}`;
  const metrics = `127.0.0.1:${await freePort()}`;
  const { configPath } = await writeAgentConfig(dir, {
    database: 'cache',
    docs: redisDocs(redis),
    tls: pki.agentTls,
    listen,
    metrics,
  });
  await writeFile(path.join(dir, 'tls.key'), 'not a key\n');
  await rm(pki.dir, { recursive: true, force: true });

  // What the kubelet mounts at the container's terminationMessagePath.
  const terminationLog = path.join(dir, 'termination-log');
  await writeFile(terminationLog, '');
  const args = ['agent', '--config', configPath, '--workers', '2', '--termination-log', terminationLog];
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, DRAWBRIDGE_LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let logs = '';
  child.stdout.on('data', (d) => (logs += d));
  child.stderr.on('data', (d) => (logs += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  clearTimeout(timer);

  expect(code, logs).toBe(1);
  const lines = logs
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg: string; reason?: string; restartInMs?: number });
  const restarts = lines.filter((l) => l.msg.startsWith('agent worker exited; starting it again'));
  // Four restarts with growing pauses, the fifth quick death ends it.
  expect(restarts.map((l) => l.restartInMs)).toEqual([1000, 2000, 4000, 8000]);
  const fatal = lines.find((l) => l.msg.startsWith('every agent worker keeps exiting at start'));
  expect(fatal?.reason).toMatch(/^agent worker exited \(code \d+\) 5 times in a row/);
  // The workers said why, naming the file and the fix, and never echoing the file's contents.
  const key = path.join(dir, 'tls.key');
  expect(logs).toContain(`tls.keyFile ${key}: not the PEM private key of the serving certificate`);
  expect(logs).toContain('fix: point tls.keyFile at the PEM private key');
  expect(logs).not.toContain('not a key');
  // The pod's last termination message: a worker's error and fix, then why the primary gave up.
  const message = await readFile(terminationLog, 'utf8');
  expect(message).toMatch(
    new RegExp(
      `^tls\\.keyFile ${key}: not the PEM private key of the serving certificate\\n  fix: point tls\\.keyFile at .*\\n` +
        'agent worker exited \\(code 1\\) 5 times in a row, each within 10 s of its start: giving up\\n$',
    ),
  );
}, 90_000);

it('names a taken port and the setting to change, and exits 1', async () => {
  const pki = await issuePeopleTls(['alice'], 'cache agent', 'drawbridge-taken-pki-');
  const holder: Server = await new Promise((resolve) => {
    const srv = createServer().listen(0, '127.0.0.1', () => resolve(srv));
  });
  try {
    const listen = `127.0.0.1:${(holder.address() as { port: number }).port}`;
    const own = await mkdtemp(path.join(dir, 'taken-'));
    const { configPath } = await writeAgentConfig(own, {
      database: 'cache',
      docs: redisDocs(redis),
      tls: pki.agentTls,
      listen,
    });
    for (const workers of ['1', '2']) {
      const child = spawn(process.execPath, [CLI, 'agent', '--config', configPath, '--workers', workers], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
      clearTimeout(timer);
      expect(code, stderr).toBe(1);
      expect(stderr).toContain(
        `cannot listen on ${listen} for client connections: the port is in use by another process\n` +
          "  fix: stop what holds it, or choose a free port (--listen, or spec.listen in a standalone agent's config)",
      );
    }
  } finally {
    holder.close();
    await rm(pki.dir, { recursive: true, force: true });
  }
}, 150_000);
