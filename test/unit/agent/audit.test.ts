// The audit sink: JSON lines with `time` first, in order, whole, across batch boundaries and for
// events of any size or script.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type AuditEvent,
  JsonLinesAudit,
  MAX_BYTES_PER_UNIT,
  writeJsonFields,
} from '../../../src/agent/audit.js';
import { isLocalFile } from '../../../src/agent/audit-file.js';
import { createLogger } from '../../../src/log.js';

let dir: string | undefined;
afterEach(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

async function written(emit: (audit: JsonLinesAudit) => void): Promise<string[]> {
  dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-audit-'));
  const file = path.join(dir, 'audit.jsonl');
  const audit = new JsonLinesAudit(file, createLogger('test', 'silent'));
  emit(audit);
  await audit.close();
  return (await readFile(file, 'utf8')).split('\n');
}

const event = (i: number, extra: Record<string, unknown> = {}): AuditEvent => ({
  type: 'command',
  sessionId: 's',
  database: 'db',
  protocol: 'redis',
  user: 'alice',
  command: 'set',
  args: [`key:${i}`],
  ...extra,
});

describe('JsonLinesAudit', () => {
  it('writes every event as one JSON line, time first, in order, across many batches', async () => {
    const n = 5_000; // about 150 bytes each: several 64 KB batches
    const lines = await written((audit) => {
      for (let i = 0; i < n; i++) {
        if (i % 2) audit.emit(event(i));
        else {
          // The engines' fast path: the event written straight into the batch.
          const json = JSON.stringify(event(i));
          audit.emitWith!(json.length * MAX_BYTES_PER_UNIT, {
            writeAuditEvent: (buf, at) => writeJsonFields(buf, at, json),
          });
        }
      }
    });
    expect(lines.pop()).toBe('');
    expect(lines).toHaveLength(n);
    lines.forEach((line, i) => {
      expect(line.startsWith('{"time":"')).toBe(true);
      const parsed = JSON.parse(line) as AuditEvent & { time: string };
      expect(parsed).toEqual({ time: parsed.time, ...event(i) });
      expect(Number.isNaN(Date.parse(parsed.time))).toBe(false);
    });
  });

  it('escapes what a log viewer would hide or act on, the value unchanged', async () => {
    // A right-to-left override makes `admin` read backwards; a zero-width space makes two names look
    // alike; C1 controls, DEL and the line separators act on terminals and line splitters.
    const hidden = 'key:\u202eadmin\u2066 a\u200bb\u0085\u009b31m\u007f\u2028\u2029\u{e0041}\ufeff';
    const lines = await written((audit) => audit.emit(event(1, { args: [hidden], user: 'ali\u200bce' })));
    expect(lines[0]).not.toMatch(/[\u007f-\u009f\u2028\u2029\u200b\u202e\u2066\ufeff]|\u{e0041}/u);
    expect(lines[0]).toContain(
      'key:\\u202eadmin\\u2066 a\\u200bb\\u0085\\u009b31m\\u007f\\u2028\\u2029\\udb40\\udc41\\ufeff',
    );
    expect(JSON.parse(lines[0]!)).toMatchObject({ args: [hidden], user: 'ali\u200bce' });
  });

  it('keeps multi-byte text and events larger than a batch whole', async () => {
    const big = 'ü€😀'.repeat(40_000); // 360 KB of UTF-8
    const lines = await written((audit) => {
      audit.emit(event(1, { query: 'select 1 -- ünïcödé ✓' }));
      audit.emit(event(2, { query: big }));
      audit.emit(event(3));
    });
    const parsed = lines.filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.map((e) => e.args)).toEqual([['key:1'], ['key:2'], ['key:3']]);
    expect(parsed[0]!.query).toBe('select 1 -- ünïcödé ✓');
    expect(parsed[1]!.query).toBe(big);
  });

  it('stamps each event with its own millisecond, across milliseconds, seconds and days', async () => {
    const times = [
      Date.UTC(2026, 11, 31, 23, 59, 58, 998),
      Date.UTC(2026, 11, 31, 23, 59, 58, 999),
      Date.UTC(2026, 11, 31, 23, 59, 59, 0),
      Date.UTC(2026, 11, 31, 23, 59, 59, 9),
      Date.UTC(2026, 11, 31, 23, 59, 59, 10),
      Date.UTC(2026, 11, 31, 23, 59, 59, 99),
      Date.UTC(2026, 11, 31, 23, 59, 59, 100),
      Date.UTC(2026, 11, 31, 23, 59, 59, 100),
      Date.UTC(2026, 11, 31, 23, 59, 59, 999),
      Date.UTC(2027, 0, 1, 0, 0, 0, 0),
      Date.UTC(2027, 0, 1, 0, 0, 0, 57),
      Date.UTC(2027, 0, 1, 0, 0, 0, 3), // the clock stepped back
    ];
    const now = vi.spyOn(Date, 'now');
    try {
      const lines = await written((audit) => {
        for (const [i, t] of times.entries()) {
          now.mockReturnValue(t);
          audit.emit(event(i));
        }
      });
      expect(lines.slice(0, -1).map((l) => (JSON.parse(l) as { time: string }).time)).toEqual(
        times.map((t) => new Date(t).toISOString()),
      );
    } finally {
      now.mockRestore();
    }
  });

  it('stamps a fast-path event with the time its caller read, without reading the clock again', async () => {
    const readAt = Date.UTC(2026, 11, 31, 23, 59, 59, 7);
    const json = JSON.stringify(event(1));
    const now = vi.spyOn(Date, 'now').mockReturnValue(Date.UTC(2027, 0, 1, 0, 0, 0, 500));
    try {
      const lines = await written((audit) => {
        audit.emitWith!(
          json.length * MAX_BYTES_PER_UNIT,
          { writeAuditEvent: (b, at) => writeJsonFields(b, at, json) },
          readAt,
        );
        audit.emitWith!(json.length * MAX_BYTES_PER_UNIT, {
          writeAuditEvent: (b, at) => writeJsonFields(b, at, json),
        });
      });
      expect(lines.slice(0, -1).map((l) => (JSON.parse(l) as { time: string }).time)).toEqual([
        '2026-12-31T23:59:59.007Z',
        '2027-01-01T00:00:00.500Z',
      ]);
    } finally {
      now.mockRestore();
    }
  });

  it('writes a full batch into a regular file before emit returns (no threadpool round trip)', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-audit-'));
    const file = path.join(dir, 'audit.jsonl');
    const audit = new JsonLinesAudit(file, createLogger('test', 'silent'));
    try {
      audit.emit(event(0)); // opens the file (asynchronously, once)
      while (audit.pendingBytes > 0) await new Promise((r) => setTimeout(r, 5));
      const before = statSync(file).size;
      let n = 1;
      // Until a 64 KiB batch is flushed (about 500 events; 5,000 at most).
      while (n < 5000 && (n === 1 || audit.pendingBytes > 0)) audit.emit(event(n++));
      // Nothing waits for a callback: the batch is in the file, and the sink is not behind.
      expect(audit.pendingBytes).toBe(0);
      expect(statSync(file).size - before).toBeGreaterThanOrEqual(64 * 1024);
      await audit.close();
      const lines = (await readFile(file, 'utf8')).split('\n');
      expect(lines.slice(0, -1).map((l) => (JSON.parse(l) as { args: string[] }).args[0])).toEqual(
        Array.from({ length: n }, (_, i) => `key:${i}`),
      );
    } finally {
      await audit.close();
    }
  });

  it('writes a local file in batches of 256 KiB, fewer write(2)s than the 64 KiB a pipe gets', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-audit-'));
    const file = path.join(dir, 'audit.jsonl');
    const audit = new JsonLinesAudit(file, createLogger('test', 'silent'));
    try {
      audit.emit(event(0)); // opens the file (asynchronously, once): then it is known to be a local one
      while (audit.pendingBytes > 0) await new Promise((r) => setTimeout(r, 5));
      const before = statSync(file).size;
      let n = 1;
      while (n < 20_000 && audit.pendingBytes < 128 * 1024) audit.emit(event(n++));
      expect(statSync(file).size).toBe(before); // past 64 KiB and still one batch
      while (n < 20_000 && audit.pendingBytes > 0) audit.emit(event(n++));
      expect(audit.pendingBytes).toBe(0); // written before emit returned, as one batch
      expect(statSync(file).size - before).toBeGreaterThanOrEqual(256 * 1024);
    } finally {
      await audit.close();
    }
  });
});

describe('JsonLinesAudit to a pipe', () => {
  it('writes a batch before emit returns, holds what a full pipe cannot take, then writes it all once', async () => {
    const { closeSync, constants, openSync, readSync } = await import('node:fs');
    dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-audit-'));
    const fifo = path.join(dir, 'audit.fifo');
    execFileSync('mkfifo', [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const buf = Buffer.alloc(1 << 20);
    const readNow = () => {
      let text = '';
      for (;;) {
        try {
          const n = readSync(reader, buf);
          if (n === 0) return text;
          text += buf.toString('utf8', 0, n);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EAGAIN') return text;
          throw err;
        }
      }
    };
    const audit = new JsonLinesAudit(fifo, createLogger('test', 'silent'));
    try {
      audit.emit(event(0)); // opens the FIFO (asynchronously, once)
      while (audit.pendingBytes > 0) await new Promise((r) => setTimeout(r, 5));
      let text = readNow();
      let n = 1;
      let got = '';
      while (n < 5000 && got === '') {
        audit.emit(event(n++));
        got = readNow();
      }
      // The batch is in the pipe as soon as the emit that filled it returns (no threadpool round trip).
      expect(got.length).toBeGreaterThanOrEqual(64 * 1024);
      text += got;
      // Nobody reads: the pipe (64 KiB) fills, and the rest waits in the sink, counted.
      const big = { query: 'x'.repeat(1000) };
      for (let i = 0; i < 1000; i++) audit.emit(event(n++, big));
      await new Promise((r) => setTimeout(r, 50)); // the loop runs meanwhile
      expect(audit.pendingBytes).toBeGreaterThan(500_000);
      expect(audit.held).toBe(false); // under the 8 MiB bound
      const closed = audit.close();
      for (let i = 0; i < 200 && (audit.pendingBytes > 0 || !text.endsWith('\n')); i++) {
        text += readNow();
        await new Promise((r) => setTimeout(r, 5));
      }
      await closed;
      text += readNow();
      const keys = text
        .split('\n')
        .filter(Boolean)
        .map((l) => (JSON.parse(l) as { args: string[] }).args[0]);
      expect(keys).toEqual(Array.from({ length: n }, (_, i) => `key:${i}`));
    } finally {
      await audit.close();
      closeSync(reader);
    }
  });
});

describe('isLocalFile: which regular audit files are written in the event loop', () => {
  it('a file on a local disk is; a pipe, and a regular file on a file system not known to be local, are not', async () => {
    const { closeSync, openSync } = await import('node:fs');
    const dir = await mkdtemp(path.join(os.tmpdir(), 'audit-local-'));
    const file = path.join(dir, 'audit.log');
    const fd = openSync(file, 'a');
    // procfs stands in for NFS or FUSE: its files are regular files whose writes may wait on more
    // than the local disk, so they stay on the threadpool.
    const proc = openSync('/proc/self/status', 'r');
    const fifo = path.join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    const pipe = openSync(fifo, 'r+'); // read-write: Linux opens a FIFO so without a peer
    try {
      expect(isLocalFile(fd, file)).toBe(true);
      expect(isLocalFile(proc, '/proc/self/status')).toBe(false);
      expect(isLocalFile(pipe, fifo)).toBe(false);
    } finally {
      closeSync(fd);
      closeSync(proc);
      closeSync(pipe);
      await rm(dir, { recursive: true, force: true });
    }
  });
});
