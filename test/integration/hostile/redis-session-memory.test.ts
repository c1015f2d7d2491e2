// Hostile: an authenticated client, sending only commands its roles allow, must not make the agent
// keep per-session state that grows with what it sends: a deep pipeline whose replies it never reads.
// A real Redis 7 behind the real agent (in this process: its heap is the agent's).
import type { TLSSocket } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisFixture, startRedisFixture } from '../redis/fixture.js';
import { MB } from './limits-support.js';

// What the agent retains, not the garbage its parsing left: measured after a full collection.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
const heapAfterGc = () => {
  gc();
  return process.memoryUsage().heapUsed;
};

let f: RedisFixture;
const sockets: TLSSocket[] = [];

beforeAll(async () => {
  f = await startRedisFixture();
});

afterAll(async () => {
  sockets.forEach((s) => s.destroy());
  await f?.stop();
});

/**
 * Writes `count` copies of `cmd` (in batches of 4,096, one reused buffer) without reading; stops early
 * when the socket takes nothing for `stallMs`. Resolves to how many went out.
 */
async function pipelineUnread(s: TLSSocket, cmd: Buffer, count: number, stallMs = 2000): Promise<number> {
  const batch = Buffer.concat(Array.from({ length: 4096 }, () => cmd));
  let sent = 0;
  while (sent < count) {
    sent += 4096;
    if (!s.write(batch)) {
      const drained = await Promise.race([
        new Promise<boolean>((r) => s.once('drain', () => r(true))),
        new Promise<boolean>((r) => setTimeout(() => r(false), stallMs)),
      ]);
      if (!drained) break;
    }
  }
  return sent;
}

describe('a pipeline whose replies the client does not read', () => {
  it('the agent stops reading it at 65,536 unanswered commands; its memory stays bounded; every reply comes once read', async () => {
    const alice = await f.raw('alice');
    sockets.push(alice);
    alice.pause();
    const total = 2 * 1024 * 1024;
    const base = heapAfterGc();
    const sent = await pipelineUnread(alice, Buffer.from('*1\r\n$4\r\nPING\r\n'), total);
    const retained = heapAfterGc() - base;
    // ~50 bytes a command without the bound: 100 MB kept for these 2 Mi PINGs (28 MB sent).
    expect(retained).toBeLessThan(16 * MB);
    expect(sent).toBeLessThan(total);
    // Read now: every command sent is answered, in order, and the session goes on.
    let pongs = 0;
    let tail = '';
    alice.on('data', (d: Buffer) => {
      const text = tail + d.toString('latin1');
      pongs += text.split('+PONG\r\n').length - 1;
      tail = text.slice(text.lastIndexOf('\n') + 1);
    });
    alice.resume();
    await new Promise<void>((resolve) => {
      const check = setInterval(() => {
        if (pongs >= sent) {
          clearInterval(check);
          resolve();
        }
      }, 50);
    });
    expect(pongs).toBe(sent);
  });
});
