// ChunkBuffer: a bulk parked chunk by chunk is copied once, and what was parked never leaks into the
// next frame (the parked list is emptied only when it holds something: drained() runs after every read).
import { describe, expect, it } from 'vitest';
import { ReplyFramer } from '../../../src/engines/redis/reply-parser.js';

/** Feeds `chunks` one by one; returns every frame handed out, as text. */
function frames(framer: ReplyFramer, out: string[], chunks: string[]): string[] {
  for (const c of chunks) framer.feed(Buffer.from(c));
  return out;
}

describe('ChunkBuffer (through the reply framer)', () => {
  it('parks a bulk split over several reads, drains, then parks the next one without the first one’s bytes', () => {
    const out: string[] = [];
    const framer = new ReplyFramer((f) => out.push(f.toString()));
    const value = 'v'.repeat(40);
    // The header says 40 bytes; the reads after it are shorter than what is missing, so they are parked.
    frames(framer, out, ['$40\r\n', value.slice(0, 10), value.slice(10, 20), `${value.slice(20)}\r\n`]);
    expect(out).toEqual([`$40\r\n${value}\r\n`]);
    // Drained: the next frame starts on a fresh read, and is parked again.
    frames(framer, out, ['+OK\r\n', '$6\r\n', 'ab', 'cd', 'ef\r\n', ':1\r\n']);
    expect(out).toEqual([`$40\r\n${value}\r\n`, '+OK\r\n', '$6\r\nabcdef\r\n', ':1\r\n']);
  });
});
