// Log lines to a stdout pipe nobody reads: bounded in memory, the loss reported once it drains; what
// clients chose reaches the line escaped.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { boundedLines, createLogger } from '../../src/log.js';
import { UNSEEN } from '../../src/unseen.js';

/** A stream that takes writes only when `release()` is called, like a pipe whose reader stopped. */
function stuckPipe() {
  const got: string[] = [];
  const held: (() => void)[] = [];
  const out = new Writable({
    highWaterMark: 16,
    write(chunk: Buffer, _enc, done) {
      got.push(chunk.toString());
      held.push(done);
    },
  });
  const release = async () => {
    while (held.length) {
      held.shift()!();
      await new Promise((r) => setImmediate(r));
    }
  };
  return { out, got, release };
}

describe('boundedLines', () => {
  it('queues lines up to the bound, drops the rest, then says how many were dropped', async () => {
    const pipe = stuckPipe();
    const log = boundedLines(pipe.out as never, 100);
    for (let i = 0; i < 10; i++) log.write(`{"msg":"line ${i}"}\n`); // 17 bytes each: 5 fit in 100
    await pipe.release();
    const lines = pipe.got.join('').trimEnd().split('\n');
    expect(lines.slice(0, 5)).toEqual([0, 1, 2, 3, 4].map((i) => `{"msg":"line ${i}"}`));
    expect(lines).toHaveLength(6);
    expect(JSON.parse(lines[5]!)).toMatchObject({
      level: 40,
      msg: '5 log lines dropped: stdout was not read',
    });
    log.write('{"msg":"after"}\n'); // drained: lines flow again, nothing more reported
    await pipe.release();
    expect(pipe.got.at(-1)).toBe('{"msg":"after"}\n');
  });
});

describe('createLogger', () => {
  it('escapes what a log viewer would hide or obey, as the audit does; the JSON value is the same', () => {
    const got: string[] = [];
    const log = createLogger('t', 'info', { write: (line: string) => void got.push(line) });
    // A C1 CSI (red text), DEL, a right-to-left override, a zero-width space, a line separator.
    const hostile = 'alice\u009b31m\u007f\u202eevil\u200b\u2028{"level":60}';
    log.info({ dbUser: hostile }, `access denied ${hostile}`);
    expect(got).toHaveLength(1);
    expect(got[0]).not.toMatch(UNSEEN);
    expect(got[0]).toContain('alice\\u009b31m\\u007f\\u202eevil\\u200b\\u2028');
    const line = JSON.parse(got[0]!) as { dbUser: string; msg: string };
    expect(line.dbUser).toBe(hostile);
    expect(line.msg).toBe(`access denied ${hostile}`);
  });
});
