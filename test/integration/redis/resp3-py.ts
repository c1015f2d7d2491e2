// redis-py with protocol=3 (resp3_client.py, in the test/python venv) through an agent, standalone or
// cluster alike: the script plays one scenario and prints what the client saw; the expectations are
// the same whatever the agent fronts, since a cluster behind one endpoint must look like one server.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { venvPython } from '../../support/venv.js';

/** The agent on 127.0.0.1:`port`, and the PEM files of the CA and of the person the client is. */
export interface PyTarget {
  port: number;
  ca: string;
  cert: string;
  key: string;
}

function runScript(
  cmd: string,
  args: string[],
): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

/**
 * Runs the script against `t` and checks what redis-py saw: RESP3 types (maps, sets, doubles), a
 * message push between replies on one connection, HELLO 2 going back, and a tracking invalidation.
 */
export async function expectRedisPyResp3(t: PyTarget): Promise<void> {
  const python = venvPython('test/python/requirements.txt');
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'resp3_client.py');
  // Not spawnSync: the agent runs in this process and must keep serving while the script runs.
  const run = await runScript(python, [script, JSON.stringify({ host: '127.0.0.1', ...t })]);
  expect(run.stderr).toBe('');
  expect(run.status).toBe(0);
  const out = JSON.parse(run.stdout) as Record<string, unknown>;
  expect(out.hello).toMatchObject({ map: { proto: 3, role: 'master' } });
  expect(out.hgetall).toEqual({ map: { a: '1', b: '2' } });
  // redis-py hands RESP3 sets over as lists (their items may be unhashable).
  expect((out.smembers as string[]).sort()).toEqual(['x', 'y']);
  expect(out.zscore).toBe(1.5);
  expect(out.zrange).toEqual([
    ['m', 1.5],
    ['n', 2.25],
  ]);
  expect(out.lrange).toEqual(['a', 'b', 'c']);
  expect(out.pushes).toEqual([
    ['subscribe', 'py:ch', 1],
    ['message', 'py:ch', 'hi'],
  ]);
  expect(out.set_while_subscribed).toBe('OK');
  expect(out.get_while_subscribed).toBe('v');
  expect(out.hello2).toEqual(expect.arrayContaining(['proto', 2]));
  expect(out.hgetall_resp2).toEqual(['a', '1', 'b', '2']);
  expect(out.tracking_on).toBe('OK');
  expect(out.tracked_read).toBe('v1');
  expect(out.ping_after_write).toBe('PONG');
  expect(out.invalidated).toEqual([['invalidate', ['py:tracked']]]);
}
