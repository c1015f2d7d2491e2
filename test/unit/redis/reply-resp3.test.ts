// RESP3 replies: decoding of every type, decode → encode round trips (RESP3 and the RESP2 downgrade),
// the limits a hostile backend runs into (depth, declared counts, endless streams) and malformed input.
import { describe, expect, it } from 'vitest';
import { isDrawbridgeError } from '../../../src/errors.js';
import {
  ReplyFramer,
  RespBigNumber,
  RespDouble,
  RespError,
  RespMap,
  RespPush,
  RespSet,
  type RespValue,
  RespVerbatim,
  decodeReply,
} from '../../../src/engines/redis/reply-parser.js';
import { encodeValue, mapHeader, nullReply, resp2Value } from '../../../src/engines/redis/serializer.js';

const b = (s: string): Buffer => Buffer.from(s, 'latin1');

/** Canonical frames (what encodeValue writes) and their values. */
const canonical: [string, RespValue][] = [
  ['_\r\n', null],
  ['#t\r\n', true],
  ['#f\r\n', false],
  [',3.14\r\n', new RespDouble(3.14)],
  [',-2\r\n', new RespDouble(-2)],
  [',1e+300\r\n', new RespDouble(1e300)],
  [',inf\r\n', new RespDouble(Infinity)],
  [',-inf\r\n', new RespDouble(-Infinity)],
  [',nan\r\n', new RespDouble(NaN)],
  [
    '(3492890328409238509324850943850943825024385\r\n',
    new RespBigNumber(3492890328409238509324850943850943825024385n),
  ],
  ['(-12\r\n', new RespBigNumber(-12n)],
  ['!10\r\nERR a\r\nb c\r\n', new RespError('ERR a\r\nb c')],
  ['-ERR one line\r\n', new RespError('ERR one line')],
  ['=15\r\ntxt:Some string\r\n', new RespVerbatim('txt', b('Some string'))],
  ['=4\r\nmkd:\r\n', new RespVerbatim('mkd', b(''))],
  ['%0\r\n', new RespMap([])],
  [
    '%2\r\n+server\r\n$5\r\nredis\r\n*1\r\n:1\r\n~2\r\n#t\r\n_\r\n',
    new RespMap([
      ['server', b('redis')],
      [[1], new RespSet([true, null])],
    ]),
  ],
  ['~0\r\n', new RespSet([])],
  ['>2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n', new RespPush([b('invalidate'), [b('key')]])],
  [
    '>2\r\n+x\r\n%1\r\n+k\r\n%1\r\n+a\r\n~1\r\n:1\r\n',
    new RespPush(['x', new RespMap([['k', new RespMap([['a', new RespSet([1])]])]])]),
  ],
];

/** Frames the decoder normalises: attributes dropped, streams joined. */
const normalised: [string, RespValue][] = [
  ['|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n', b('v')],
  ['|0\r\n|1\r\n+a\r\n%1\r\n+b\r\n:1\r\n:7\r\n', 7],
  ['*2\r\n|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n:5\r\n', [b('v'), 5]],
  ['$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n', b('Hello word')],
  ['*?\r\n:1\r\n:2\r\n.\r\n', [1, 2]],
  [
    '%?\r\n+a\r\n:1\r\n+b\r\n~?\r\n.\r\n.\r\n',
    new RespMap([
      ['a', 1],
      ['b', new RespSet([])],
    ]),
  ],
  ['>?\r\n+pong\r\n.\r\n', new RespPush(['pong'])],
  [',1.50\r\n', new RespDouble(1.5)],
  [',+inf\r\n', new RespDouble(Infinity)],
  [':9007199254740992\r\n', 2 ** 53],
];

function frameAll(input: Buffer, opts: { maxFrame?: number; maxDepth?: number } = {}): Buffer[] {
  const out: Buffer[] = [];
  const f = new ReplyFramer((x) => out.push(x), opts);
  f.feed(input);
  return out;
}

function protocolError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (isDrawbridgeError(err)) return `${err.code}: ${err.message}`;
    throw err;
  }
  throw new Error('no error thrown');
}

describe('RESP3 decoding', () => {
  for (const [frame, value] of canonical) {
    it(`${JSON.stringify(frame)} decodes and encodes back byte for byte`, () => {
      expect(frameAll(b(frame))).toEqual([b(frame)]);
      const decoded = decodeReply(b(frame));
      expect(decoded).toEqual(value);
      expect(encodeValue(decoded, 3).toString('latin1')).toBe(frame);
    });
  }

  for (const [frame, value] of normalised) {
    it(`${JSON.stringify(frame)} decodes normalised`, () => {
      expect(frameAll(b(frame))).toEqual([b(frame)]);
      expect(decodeReply(b(frame))).toEqual(value);
    });
  }

  it('decodes blob errors to RespError with their prefix, and doubles/big numbers exactly', () => {
    const e = decodeReply(b('!21\r\nSYNTAX invalid syntax\r\n'));
    expect(e).toBeInstanceOf(RespError);
    expect((e as RespError).prefix).toBe('SYNTAX');
    expect((decodeReply(b(',0.1\r\n')) as RespDouble).value).toBe(0.1);
    expect((decodeReply(b('(-9007199254740993\r\n')) as RespBigNumber).value).toBe(-9007199254740993n);
  });

  it('looks map values up by string key, simple or bulk', () => {
    const m = decodeReply(b('%3\r\n+proto\r\n:3\r\n$4\r\nrole\r\n$6\r\nmaster\r\n:1\r\n+x\r\n')) as RespMap;
    expect(m.get('proto')).toBe(3);
    expect(m.get('role')).toEqual(b('master'));
    expect(m.get('missing')).toBeUndefined();
  });
});

describe('RESP3 values to RESP2 (what Redis answers a RESP2 client)', () => {
  const cases: [RespValue, string][] = [
    [null, '$-1\r\n'],
    [true, ':1\r\n'],
    [false, ':0\r\n'],
    [new RespDouble(1.5), '$3\r\n1.5\r\n'],
    [new RespDouble(-Infinity), '$4\r\n-inf\r\n'],
    [new RespBigNumber(123n), '$3\r\n123\r\n'],
    [new RespVerbatim('txt', b('hi')), '$2\r\nhi\r\n'],
    [new RespError('ERR a\r\nb'), '-ERR a b\r\n'],
    [new RespMap([['a', 1]]), '*2\r\n+a\r\n:1\r\n'],
    [new RespSet([1, 2]), '*2\r\n:1\r\n:2\r\n'],
    [new RespPush([b('message')]), '*1\r\n$7\r\nmessage\r\n'],
  ];
  for (const [value, want] of cases) {
    it(`${JSON.stringify(want)}`, () => expect(encodeValue(value).toString('latin1')).toBe(want));
  }

  // The cluster service reads CLUSTER SHARDS and COMMAND this way from RESP3 pools (decoded once).
  it('resp2Value gives what the RESP2 encoding decodes to, for every frame above', () => {
    for (const [frame] of [...canonical, ...normalised]) {
      const value = decodeReply(b(frame));
      // RESP2 cannot carry an error's line breaks; resp2Value keeps its message whole.
      if (value instanceof RespError) expect(resp2Value(value)).toBe(value);
      else expect(resp2Value(value), frame).toEqual(decodeReply(encodeValue(value, 2)));
    }
  });

  it('writes the null and map headers of each protocol', () => {
    expect([nullReply(2), nullReply(3)].map(String)).toEqual(['$-1\r\n', '_\r\n']);
    expect([mapHeader(2, 2), mapHeader(2, 3)].map(String)).toEqual(['*4\r\n', '%2\r\n']);
  });
});

describe('RESP3 limits against a hostile backend', () => {
  const nested = (open: string, depth: number, inner = ':1\r\n'): Buffer => b(open.repeat(depth) + inner);

  for (const open of ['*1\r\n', '%1\r\n+k\r\n', '~1\r\n', '>1\r\n', '*?\r\n', '|1\r\n']) {
    it(`nesting of ${JSON.stringify(open)} past maxDepth ends the stream with PROTOCOL_ERROR`, () => {
      expect(protocolError(() => frameAll(nested(open, 20_000)))).toMatch(
        /^PROTOCOL_ERROR: .*nested deeper than 10000/,
      );
      expect(protocolError(() => frameAll(nested(open, 6), { maxDepth: 5 }))).toMatch(/nested deeper than 5/);
    });
  }

  it('frames nesting up to its limit (past the ~8,000 of a Lua reply), decodes up to 1,000', () => {
    const deepest = b('*1\r\n'.repeat(9_999) + ':1\r\n');
    expect(frameAll(deepest)).toEqual([deepest]);
    const frame = b('*1\r\n'.repeat(1000) + ':1\r\n');
    let v = decodeReply(frame);
    for (let i = 0; i < 1000; i++) v = (v as RespValue[])[0]!;
    expect(v).toBe(1);
    expect(protocolError(() => decodeReply(b(`*1\r\n${frame.toString()}`)))).toMatch(
      /^PROTOCOL_ERROR: .*nested deeper than 1000/,
    );
  });

  it('a long run of attributes costs no stack', () => {
    const frame = b('|0\r\n'.repeat(100_000) + '+OK\r\n');
    expect(frameAll(frame)).toHaveLength(1);
    expect(decodeReply(frame)).toBe('OK');
  });

  it('huge declared counts allocate nothing: the framer waits, the decoder refuses', () => {
    for (const h of [
      '*999999999999999\r\n',
      '%999999999999999\r\n',
      '~999999999999999\r\n',
      '|999999999999999\r\n',
    ]) {
      expect(frameAll(b(h))).toEqual([]);
      expect(protocolError(() => decodeReply(b(`${h}:1\r\n`)))).toMatch(
        /PROTOCOL_ERROR: .*invalid aggregate length/,
      );
    }
    expect(protocolError(() => frameAll(b('%1000000000000000\r\n')))).toMatch(/invalid aggregate length/);
  });

  it('an endless streamed aggregate or string stops at maxFrame', () => {
    for (const [head, part] of [
      ['*?\r\n', ':1\r\n'],
      ['%?\r\n', '+k\r\n+v\r\n'],
      ['$?\r\n', ';3\r\nabc\r\n'],
    ] as const) {
      const f = new ReplyFramer(() => expect.unreachable(), { maxFrame: 4096 });
      const err = protocolError(() => {
        f.feed(b(head));
        for (let i = 0; i < 10_000; i++) f.feed(b(part));
      });
      expect(err).toMatch(/^MESSAGE_TOO_LARGE: reply larger than 4096 bytes/);
    }
  });
});

describe('malformed RESP3 replies', () => {
  const framing: [string, RegExp][] = [
    ['.\r\n', /'\.' outside a streamed aggregate/],
    ['*1\r\n.\r\n', /'\.' outside a streamed aggregate/],
    ['*?\r\n.x\r\n', /'\.' outside a streamed aggregate/],
    [';3\r\nabc\r\n', /';' outside a streamed string/],
    ['$?\r\n:1\r\n', /streamed string part expected/],
    ['$?\r\n;-1\r\n', /invalid streamed string part length/],
    ['$?\r\n;1\r\nabcd', /not terminated by CRLF/],
    ['$3\r\nabcde\r\n', /not terminated by CRLF/],
    ['%-1\r\n', /invalid aggregate length/],
    ['~-1\r\n', /invalid aggregate length/],
    ['>-1\r\n', /invalid aggregate length/],
    ['|?\r\n', /invalid aggregate length/],
    ['!-1\r\n', /invalid bulk length/],
    ['=-1\r\n', /invalid bulk length/],
    ['*?x\r\n', /invalid array length/],
    ['$?\nx', /invalid bulk length/],
    ['*-2\r\n', /invalid array length/],
  ];
  for (const [input, message] of framing) {
    it(`framer: ${JSON.stringify(input)}`, () => {
      expect(protocolError(() => frameAll(b(input)))).toMatch(
        new RegExp(`^PROTOCOL_ERROR: .*${message.source}`),
      );
    });
  }

  const decoding: [string, RegExp][] = [
    ['_x\r\n', /invalid null/],
    ['#x\r\n', /invalid boolean/],
    ['#tt\r\n', /invalid boolean/],
    [',\r\n', /invalid double/],
    [',0x10\r\n', /invalid double/],
    [',Infinity\r\n', /invalid double/],
    ['(\r\n', /invalid big number/],
    ['(1.5\r\n', /invalid big number/],
    [':1x\r\n', /invalid integer/],
    ['=3\r\ntxt\r\n', /invalid verbatim string/],
    ['=5\r\ntxt-x\r\n', /invalid verbatim string/],
    ['%?\r\n+a\r\n.\r\n', /map with a key and no value/],
    ['*?\r\n|0\r\n.\r\n', /misplaced stream part/],
  ];
  for (const [input, message] of decoding) {
    it(`decoder: ${JSON.stringify(input)}`, () => {
      expect(frameAll(b(input))).toHaveLength(1);
      expect(protocolError(() => decodeReply(b(input)))).toMatch(
        new RegExp(`^PROTOCOL_ERROR: .*${message.source}`),
      );
    });
  }

  it('names the fix', () => {
    const err = (() => {
      try {
        frameAll(b('@\r\n'));
      } catch (e) {
        return e;
      }
    })();
    expect(err).toMatchObject({ code: 'PROTOCOL_ERROR', hint: expect.stringMatching(/RESP2 or RESP3/) });
  });
});
