// What the audit sink does when it cannot write: required mode holds sessions, then ends them; best-
// effort drops and counts; a sink that recovers writes every held event exactly once, in order.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type AuditEvent, JsonLinesAudit } from '../../../src/agent/audit.js';
import { isDrawbridgeError } from '../../../src/errors.js';
import { createLogger } from '../../../src/log.js';

const sinks: JsonLinesAudit[] = [];
let dir: string | undefined;
afterEach(async () => {
  await Promise.all(sinks.splice(0).map((s) => s.close()));
  if (dir) await rm(dir, { recursive: true, force: true });
  dir = undefined;
});

function sink(file: string, opts: Partial<ConstructorParameters<typeof JsonLinesAudit>[2]> = {}) {
  const lines: { level: number; msg: string }[] = [];
  const log = createLogger('t', 'info');
  for (const level of ['info', 'warn', 'error'] as const) {
    log[level] = ((obj: object, msg: string) =>
      void lines.push({ level: { info: 30, warn: 40, error: 50 }[level], msg, ...obj })) as never;
  }
  const s = new JsonLinesAudit(file, log, {
    mode: 'required',
    stallTimeoutMs: 300,
    bufferBytes: 64 * 1024,
    retryMs: 50,
    closeTimeoutMs: 100,
    ...opts,
  });
  sinks.push(s);
  return { s, lines };
}

const line = (i: number): AuditEvent => ({
  type: 'command',
  sessionId: 's',
  database: 'd',
  protocol: 'redis',
  user: 'u',
  n: i,
});
const until = async (what: string, ok: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('JsonLinesAudit when the log cannot be written', () => {
  it('required: holds sessions at the first failed write, then ends the waiting ones after the stall timeout', async () => {
    const { s, lines } = sink('/dev/full');
    s.emit(line(1));
    await until('held', () => s.held);
    expect(s.writeErrors).toBeGreaterThan(0);
    expect(lines).toContainEqual(expect.objectContaining({ level: 50, code: 'ENOSPC' }));
    const started = Date.now();
    const err = await new Promise((resolve) => s.whenWritable(resolve));
    expect(Date.now() - started).toBeGreaterThan(150);
    expect(isDrawbridgeError(err, 'AUDIT_UNAVAILABLE')).toBe(true);
    expect((err as Error).message).toMatch(/ENOSPC/);
    // After the stall, a session that tries is told at once.
    const again = Date.now();
    expect(isDrawbridgeError(await new Promise((r) => s.whenWritable(r)), 'AUDIT_UNAVAILABLE')).toBe(true);
    expect(Date.now() - again).toBeLessThan(50);
    expect(s.dropped).toBe(0);
  });

  it('best-effort: never holds, drops past the buffer and counts it, memory stays near the bound', async () => {
    const { s, lines } = sink('/dev/full', { mode: 'best-effort' });
    for (let i = 0; i < 20_000; i++) s.emit(line(i)); // ~2.4 MB of events
    await until('dropping', () => s.dropped > 0);
    expect(s.held).toBe(false);
    expect(s.pendingBytes).toBeLessThan(64 * 1024 + 96 * 1024);
    expect(s.dropped).toBeGreaterThan(15_000);
    expect(lines).toContainEqual(
      expect.objectContaining({ level: 50, msg: expect.stringMatching(/dropped/) }),
    );
  });

  it('required: a log that comes back gets every held event once, in order, and sessions resume', async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'audit-guarantee-'));
    const file = path.join(dir, 'later', 'audit.jsonl'); // its directory does not exist yet: ENOENT
    const { s, lines } = sink(file, { stallTimeoutMs: 10_000, bufferBytes: 1 << 20 });
    for (let i = 0; i < 3000; i++) s.emit(line(i));
    await until('held', () => s.held);
    const resumed = new Promise((resolve) => s.whenWritable(resolve));
    await mkdir(path.dirname(file));
    expect(await resumed).toBeUndefined();
    expect(s.held).toBe(false);
    await s.close();
    const written = (await readFile(file, 'utf8'))
      .trim()
      .split('\n')
      .map((l) => (JSON.parse(l) as { n: number }).n);
    expect(written).toEqual(Array.from({ length: 3000 }, (_, i) => i));
    expect(s.dropped).toBe(0);
    expect(lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining(['audit log writable again', 'audit log caught up: sessions resume']),
    );
  });

  it('a Database may choose best-effort over the agent default, and back', async () => {
    const { s } = sink('/dev/full');
    s.emit(line(1));
    await until('held', () => s.held);
    const resumed = new Promise((resolve) => s.whenWritable(resolve));
    s.configure({ mode: 'best-effort' });
    expect(await resumed).toBeUndefined();
    expect(s.held).toBe(false);
    s.configure({});
    expect(s.held).toBe(true);
  });
});
