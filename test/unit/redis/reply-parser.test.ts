// Reply framer: table-driven frames, each stream cut at every byte offset; decoding of every type.
import { describe, expect, it } from 'vitest';
import { ReplyFramer, RespError, decodeReply } from '../../../src/engines/redis/reply-parser.js';
import { encodeValue } from '../../../src/engines/redis/serializer.js';

const frames: [string, string][] = [
  ['simple', '+OK\r\n'],
  ['error', '-ERR unknown command\r\n'],
  ['MOVED', '-MOVED 3999 127.0.0.1:6381\r\n'],
  ['integer', ':-42\r\n'],
  ['bulk', '$5\r\nhello\r\n'],
  ['bulk with CRLF inside', '$4\r\n\r\n\r\n\r\n'],
  ['empty bulk', '$0\r\n\r\n'],
  ['nil bulk', '$-1\r\n'],
  ['nil array', '*-1\r\n'],
  ['empty array', '*0\r\n'],
  ['flat array', '*3\r\n$1\r\na\r\n:2\r\n+c\r\n'],
  ['nested arrays', '*2\r\n*2\r\n:1\r\n*1\r\n$1\r\nx\r\n*0\r\n'],
  ['array with nil and error', '*3\r\n$-1\r\n-ERR x\r\n*-1\r\n'],
  ['pubsub message', '*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nhey\r\n'],
];

function frame(stream: Buffer[]): string[] {
  const out: string[] = [];
  const f = new ReplyFramer((b) => out.push(b.toString('latin1')));
  for (const c of stream) f.feed(c);
  return out;
}

describe('ReplyFramer', () => {
  const all = Buffer.from(frames.map(([, f]) => f).join(''), 'latin1');
  const expected = frames.map(([, f]) => f);

  for (const [name, f] of frames) {
    it(`${name}: whole and at every cut`, () => {
      const b = Buffer.from(f, 'latin1');
      expect(frame([b])).toEqual([f]);
      for (let i = 1; i < b.length; i++) expect(frame([b.subarray(0, i), b.subarray(i)])).toEqual([f]);
    });
  }

  it('every frame back to back, cut at every offset and byte by byte', () => {
    expect(frame([all])).toEqual(expected);
    for (let i = 1; i < all.length; i++) {
      expect(frame([all.subarray(0, i), all.subarray(i)]), `cut at ${i}`).toEqual(expected);
    }
    expect(frame([...all].map((x) => Buffer.from([x])))).toEqual(expected);
  });

  it('a 100,000-element array arriving in 1 KB chunks stays linear (completes quickly)', () => {
    const parts = ['*100000\r\n'];
    for (let i = 0; i < 100_000; i++) parts.push(`$6\r\n${String(i).padStart(6, '0')}\r\n`);
    const b = Buffer.from(parts.join(''));
    const chunks: Buffer[] = [];
    for (let i = 0; i < b.length; i += 1024) chunks.push(b.subarray(i, i + 1024));
    const out: Buffer[] = [];
    const f = new ReplyFramer((x) => out.push(x));
    for (const c of chunks) f.feed(c);
    expect(out).toHaveLength(1);
    expect(out[0]!.equals(b)).toBe(true);
  });

  it('rejects an unknown type byte', () => {
    expect(() => frame([Buffer.from('%1\r\n')])).toThrow(/unknown type byte 0x25/);
  });

  it('decodes every type and round-trips through encodeValue', () => {
    const v = decodeReply(Buffer.from('*5\r\n+OK\r\n:7\r\n$2\r\nhi\r\n$-1\r\n-MOVED 1 h:1\r\n'));
    expect(v).toEqual(['OK', 7, Buffer.from('hi'), null, new RespError('MOVED 1 h:1')]);
    expect((v as unknown[])[4]).toHaveProperty('prefix', 'MOVED');
    expect(decodeReply(encodeValue(v))).toEqual(v);
  });
});
