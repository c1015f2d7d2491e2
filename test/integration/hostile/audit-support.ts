// What the audit sink suites share (audit-sink.test.ts, audit-stdout.test.ts): a FIFO the test reads
// only when it chooses to, a pipeline of SETs, a session that counts its +OK replies, and waiting.
import { execFileSync } from 'node:child_process';
import { constants, openSync, readSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';

/** A FIFO at `fifo` and its read end, open (non-blocking) and read only by `readNow`. */
export function fifoReader(fifo: string): number {
  execFileSync('mkfifo', [fifo]);
  return openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
}

/** Reads what is in the pipe `fd` now. */
export function readNow(fd: number): string {
  let text = '';
  const buf = Buffer.alloc(1 << 20);
  for (;;) {
    let n = 0;
    try {
      n = readSync(fd, buf);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return text;
      throw err;
    }
    if (n === 0) return text;
    text += buf.toString('utf8', 0, n);
  }
}

const VALUE = 'v'.repeat(200);

/** `n` SETs of `prefix:0`… as one pipeline. */
export function pipeline(prefix: string, n: number): Buffer {
  const parts: string[] = [];
  for (let i = 0; i < n; i++) {
    const key = `${prefix}:${i}`;
    parts.push(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${VALUE.length}\r\n${VALUE}\r\n`);
  }
  return Buffer.from(parts.join(''));
}

/**
 * Counts the +OK replies on a raw session and keeps what else it was told. Counts whole lines: a reply
 * may be split across two reads (a batch over one TLS record is), so a read is not a unit.
 */
export function replies(socket: TLSSocket): { ok: number; text: string; closed: boolean } {
  const state = { ok: 0, text: '', closed: false };
  let partial = '';
  socket.on('data', (d: Buffer) => {
    const lines = (partial + d.toString('latin1')).split('\r\n');
    partial = lines.pop()!;
    for (const line of lines) {
      if (line === '+OK') state.ok++;
      else state.text += `${line}\r\n`;
    }
  });
  socket.on('close', () => (state.closed = true));
  socket.on('error', () => undefined);
  return state;
}

export async function until(what: string, ok: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Waits until the count stops moving for `quietMs`; returns it. */
export async function settled(read: () => number, quietMs = 1000): Promise<number> {
  let last = -1;
  while (read() !== last) {
    last = read();
    await new Promise((r) => setTimeout(r, quietMs));
  }
  return last;
}
