// The primary's audit relay: lines from several workers' pipes, cut anywhere by the pipe, reach the log
// whole and in each worker's order; the unfinished line of a worker that died is dropped, never written;
// the session.end lines the primary writes for a dead worker's sessions come after that worker's last
// line; a regular file (or none yet) is appended to by the workers themselves, anything else relayed.
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditRelay } from '../../../src/agent/workers/audit-relay.js';
import { createLogger } from '../../../src/log.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function relay(): Promise<{ relay: AuditRelay; file: string }> {
  dir = await mkdtemp(path.join(tmpdir(), 'drawbridge-relay-'));
  const file = path.join(dir, 'audit.jsonl');
  return { relay: new AuditRelay(file, 1 << 20, createLogger('test', 'silent')), file };
}

const line = (worker: number, n: number) => `{"worker":${worker},"n":${n},"pad":"${'x'.repeat(n % 50)}"}\n`;

describe('AuditRelay', () => {
  it('writes whole lines from pipes cut at every offset, each worker in order', async () => {
    const { relay: r, file } = await relay();
    const pipes = [new PassThrough(), new PassThrough()];
    pipes.forEach((p, i) => r.attach(p, i));
    const texts = [0, 1].map((w) => Array.from({ length: 200 }, (_, n) => line(w, n)).join(''));
    // Interleave the two pipes in chunks of 1..37 bytes, so most chunks end mid-line.
    const at = [0, 0];
    for (let step = 1; at[0]! < texts[0]!.length || at[1]! < texts[1]!.length; step++) {
      const w = step % 2;
      const size = (step % 37) + 1;
      pipes[w]!.write(texts[w]!.slice(at[w], at[w]! + size));
      at[w]! += size;
      if (step % 10 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    pipes.forEach((p) => p.end());
    await new Promise((resolve) => setTimeout(resolve, 50));
    await r.close(1_000);
    const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
    const parsed = lines.map((l) => JSON.parse(l) as { worker: number; n: number });
    expect(parsed).toHaveLength(400);
    for (const w of [0, 1])
      expect(parsed.filter((e) => e.worker === w).map((e) => e.n)).toEqual([...Array(200).keys()]);
  });

  it("drops a dead worker's unfinished line and counts it", async () => {
    const { relay: r, file } = await relay();
    const pipe = new PassThrough();
    r.attach(pipe, 0);
    pipe.write(line(0, 1) + '{"worker":0,"n":2,"cut');
    pipe.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await r.close(1_000);
    expect(await readFile(file, 'utf8')).toBe(line(0, 1));
    expect(r.dropped).toBe(1);
  });

  it("writes a dead worker's session.end lines after the last of its own", async () => {
    const { relay: r, file } = await relay();
    const pipe = new PassThrough();
    r.attach(pipe, 0);
    pipe.write(line(0, 1));
    const session = { sessionId: 's1', database: 'db', protocol: 'redis', user: 'alice', dbUser: 'app' };
    r.endSessions(pipe, [session], 'agent worker exited (signal SIGKILL)');
    pipe.write(line(0, 2) + '{"cut');
    pipe.destroy();
    await new Promise((resolve) => setTimeout(resolve, 50));
    await r.close(1_000);
    const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
    expect(lines.slice(0, 2)).toEqual([line(0, 1).trim(), line(0, 2).trim()]);
    expect(JSON.parse(lines[2]!)).toEqual({
      time: expect.any(String) as string,
      type: 'session.end',
      ...session,
      reason: 'agent worker exited (signal SIGKILL)',
    });
    expect(lines).toHaveLength(3);
  });

  it('lets workers append to a regular file or a new one, and relays to anything else', async () => {
    const { file } = await relay();
    const log = createLogger('test', 'silent');
    expect(new AuditRelay(file, 1, log).direct).toBe(true);
    await writeFile(file, '');
    expect(new AuditRelay(file, 1, log).direct).toBe(true);
    const fifo = path.join(dir!, 'audit.fifo');
    execFileSync('mkfifo', [fifo]);
    expect(new AuditRelay(fifo, 1, log).direct).toBe(false);
    expect(new AuditRelay('-', 1, log).direct).toBe(false);
  });
});
