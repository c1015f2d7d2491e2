// How the primary reads a worker's pipe: a real child process's stdio pipe, read into one buffer of its
// own (not Node's new buffer per read), gives whole lines in order however the pipe cut them; the
// batches they are copied into are reused once written; the child's stdio still closes.
import { spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { LineBatches, PipeLines } from '../../../src/agent/workers/pipe-lines.js';

const LINES = 20_000;
// Lines of 1 to 300 bytes, written in odd-sized pieces, so reads end mid-line.
const WRITER = `
const lines = Array.from({ length: ${LINES} }, (_, n) => JSON.stringify({ n, pad: 'x'.repeat(n % 300) }) + '\\n').join('');
const out = require('node:fs');
for (let at = 0; at < lines.length; ) {
  const size = 1 + ((at * 7919) % 100_000);
  out.writeSync(3, lines.slice(at, at + size));
  at += size;
}`;

describe('PipeLines', () => {
  it("reads a child's pipe into its own buffer: whole lines, in order; batches reused once written", async () => {
    const child = spawn(process.execPath, ['-e', WRITER], {
      stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
    });
    const batches = new LineBatches();
    const got: string[] = [];
    const memories = new Set<ArrayBufferLike>();
    const reader = new PipeLines(child.stdio[3] as Readable, batches, (lines) => {
      got.push(lines.toString('utf8'));
      memories.add(lines.buffer);
      batches.release(lines); // written at once, as by a sink that keeps up
    });
    const childClosed = new Promise((resolve) => child.once('close', resolve));
    await new Promise((resolve) => reader.stream.once('close', resolve));
    await childClosed; // every stdio stream of the ChildProcess closed too

    const text = got.join('');
    expect(got.every((piece) => piece.endsWith('\n'))).toBe(true);
    const ns = text
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { n: number }).n);
    expect(ns).toEqual([...Array(LINES).keys()]);
    expect(reader.carried).toBe(0);
    expect(got.length).toBeGreaterThan(10); // several reads...
    expect(memories.size).toBe(1); // ...all copied into the one batch, reused as each was written
  });
});
