// Reply framer: table-driven frames (RESP2 and RESP3), each stream cut at every byte offset; decoding
// of every RESP2 type (RESP3 values, limits and malformed input: reply-resp3.test.ts).
import { describe, expect, it } from 'vitest';
import { ReplyFramer, RespError, decodeReply, isPushFrame } from '../../../src/engines/redis/reply-parser.js';
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
  // RESP3
  ['null', '_\r\n'],
  ['true', '#t\r\n'],
  ['false', '#f\r\n'],
  ['double', ',3.14\r\n'],
  ['double -inf', ',-inf\r\n'],
  ['big number', '(3492890328409238509324850943850943825024385\r\n'],
  ['blob error', '!21\r\nSYNTAX invalid syntax\r\n'],
  ['blob error with CRLF inside', '!10\r\nERR a\r\nb c\r\n'],
  ['verbatim', '=15\r\ntxt:Some string\r\n'],
  ['map', '%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n,2.5\r\n'],
  ['empty map', '%0\r\n'],
  ['map with aggregate keys', '%1\r\n*2\r\n:1\r\n:2\r\n~1\r\n#t\r\n'],
  ['set', '~3\r\n+a\r\n:1\r\n_\r\n'],
  ['push message', '>3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$3\r\nhey\r\n'],
  ['push invalidate', '>2\r\n$10\r\ninvalidate\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n'],
  ['push invalidate all', '>2\r\n$10\r\ninvalidate\r\n_\r\n'],
  ['nested maps in a push', '>2\r\n+x\r\n%1\r\n+k\r\n%2\r\n+a\r\n~1\r\n:1\r\n+b\r\n%0\r\n'],
  [
    'attribute before a reply',
    '|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n',
  ],
  ['empty attribute before a scalar', '|0\r\n:1\r\n'],
  ['two attributes before a reply', '|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n*1\r\n:2\r\n+OK\r\n'],
  ['attribute inside an array', '*2\r\n|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n:5\r\n'],
  ['attribute before a push', '|1\r\n+a\r\n:1\r\n>2\r\n+pong\r\n$0\r\n\r\n'],
  ['streamed string', '$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n'],
  ['empty streamed string', '$?\r\n;0\r\n'],
  ['streamed array', '*?\r\n:1\r\n:2\r\n:3\r\n.\r\n'],
  ['streamed map', '%?\r\n+a\r\n:1\r\n+b\r\n%?\r\n.\r\n.\r\n'],
  ['nested streams', '*?\r\n~?\r\n.\r\n$?\r\n;1\r\nx\r\n;0\r\n>?\r\n:1\r\n.\r\n*0\r\n.\r\n'],
  ['attribute in a stream', '~?\r\n|1\r\n+a\r\n:1\r\n:2\r\n.\r\n'],
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
    expect(() => frame([Buffer.from('@1\r\n')])).toThrow(/unknown type byte 0x40/);
  });

  it('tells pushes from replies, an attribute before a push included', () => {
    const pushes = frames.filter(([, f]) => isPushFrame(Buffer.from(f, 'latin1'))).map(([name]) => name);
    expect(pushes).toEqual([
      'push message',
      'push invalidate',
      'push invalidate all',
      'nested maps in a push',
      'attribute before a push',
    ]);
  });

  it('decodes every type and round-trips through encodeValue', () => {
    const v = decodeReply(Buffer.from('*5\r\n+OK\r\n:7\r\n$2\r\nhi\r\n$-1\r\n-MOVED 1 h:1\r\n'));
    expect(v).toEqual(['OK', 7, Buffer.from('hi'), null, new RespError('MOVED 1 h:1')]);
    expect((v as unknown[])[4]).toHaveProperty('prefix', 'MOVED');
    expect(decodeReply(encodeValue(v))).toEqual(v);
  });
});
