// Framing, cut at every byte offset to mimic TCP chunking (pg-protocol's inbound-parser style).
import { createHash } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { DrawbridgeError } from '../../../src/errors.js';
import { type StartupPacket, StartupCode } from '../../../src/engines/postgres/messages.js';
import { cancelRequest } from '../../../src/engines/postgres/serializer.js';
import {
  BACKEND_LIMITS,
  FRONTEND_LIMITS,
  HandshakeBuffer,
  MessageScanner,
  PASSWORD_LIMITS,
  codeSet,
} from '../../../src/engines/postgres/parser.js';
import { be, fe, msg } from './factory.js';

/** Every way to cut `buf` in two. */
function* cuts(buf: Buffer): Generator<[Buffer, Buffer]> {
  for (let i = 0; i <= buf.length; i++) yield [buf.subarray(0, i), buf.subarray(i)];
}

const startupCases: [string, Buffer, StartupPacket][] = [
  ['SSLRequest', fe.sslRequest(), { kind: 'ssl' }],
  ['GSSENCRequest', fe.gssencRequest(), { kind: 'gssenc' }],
  [
    'CancelRequest',
    fe.cancel(1234, -5678),
    { kind: 'cancel', processId: 1234, secretKey: -5678, fromPeer: false },
  ],
  [
    'PeerCancelRequest (relayed by another agent replica)',
    cancelRequest(99, 7, StartupCode.PeerCancelRequest),
    { kind: 'cancel', processId: 99, secretKey: 7, fromPeer: true },
  ],
  [
    'StartupMessage 3.0',
    fe.startup({ user: 'alice', database: 'orders', application_name: 'psql' }),
    {
      kind: 'startup',
      major: 3,
      minor: 0,
      params: new Map([
        ['user', 'alice'],
        ['database', 'orders'],
        ['application_name', 'psql'],
      ]),
    },
  ],
  [
    'StartupMessage 3.2 with a protocol option',
    fe.startup({ user: 'ünïcode', _pq_x: '1' }, 196610),
    {
      kind: 'startup',
      major: 3,
      minor: 2,
      params: new Map([
        ['user', 'ünïcode'],
        ['_pq_x', '1'],
      ]),
    },
  ],
];

describe('HandshakeBuffer.startup', () => {
  it.each(startupCases)('%s, cut at every offset', (_name, bytes, expected) => {
    const trailing = fe.query('select 1');
    for (const [a, b] of cuts(bytes)) {
      const buf = new HandshakeBuffer();
      buf.push(a);
      if (a.length < bytes.length) expect(buf.startup()).toBeUndefined();
      buf.push(Buffer.concat([b, trailing]));
      expect(buf.startup()).toEqual(expected);
      // What follows the packet stays for the next reader, byte for byte.
      expect(buf.take()).toEqual(trailing);
    }
  });

  const bad: [string, Buffer, string][] = [
    ['a length below 8', Buffer.from([0, 0, 0, 4, 0, 0, 0, 0]), 'invalid startup packet length 4'],
    ['a negative length', Buffer.from([0xff, 0xff, 0xff, 0xff]), 'invalid startup packet length -1'],
    ['a length above 10000', Buffer.from([0, 0, 0x27, 0x11]), 'invalid startup packet length 10001'],
    ['protocol 2.0', fe.startup({ user: 'a' }, 0x20000), 'unsupported frontend protocol 2.0'],
    ['a long SSLRequest', Buffer.from([0, 0, 0, 12, 4, 0xd2, 0x16, 0x2f, 0, 0, 0, 0]), 'length 12'],
    ['a short CancelRequest', Buffer.from([0, 0, 0, 12, 4, 0xd2, 0x16, 0x2e, 0, 0, 0, 1]), 'length 12'],
    ['params without a terminator', Buffer.from([0, 0, 0, 13, 0, 3, 0, 0, 0x75, 0, 0x61, 0, 0x62]), 'layout'],
    ['a name without a value', Buffer.from([0, 0, 0, 11, 0, 3, 0, 0, 0x75, 0, 0]), 'layout'],
    ['bytes after the terminator', Buffer.from([0, 0, 0, 10, 0, 3, 0, 0, 0, 0]), 'layout'],
  ];
  it.each(bad)('refuses %s with PROTOCOL_ERROR', (_name, bytes, message) => {
    const buf = new HandshakeBuffer();
    buf.push(bytes);
    let err: unknown;
    try {
      buf.startup();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DrawbridgeError);
    expect(err).toMatchObject({ code: 'PROTOCOL_ERROR', message: expect.stringContaining(message) });
  });
});

describe('HandshakeBuffer.message', () => {
  const frames: [string, Buffer, number][] = [
    ['AuthenticationOk', be.authOk(), 0x52],
    ['SASL mechanisms', be.authSasl(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']), 0x52],
    ['ParameterStatus', be.parameterStatus('server_version', '15.18'), 0x53],
    ['ReadyForQuery', be.readyForQuery(), 0x5a],
    ['ErrorResponse', be.error({ S: 'FATAL', C: '28P01', M: 'password authentication failed' }), 0x45],
  ];
  it.each(frames)('%s, cut at every offset', (_name, bytes, code) => {
    const trailing = be.readyForQuery('T');
    for (const [a, b] of cuts(bytes)) {
      const buf = new HandshakeBuffer();
      buf.push(a);
      if (a.length < bytes.length) expect(buf.message(BACKEND_LIMITS)).toBeUndefined();
      buf.push(Buffer.concat([b, trailing]));
      const frame = buf.message(BACKEND_LIMITS)!;
      expect(frame.code).toBe(code);
      expect(frame.frame).toEqual(bytes);
      expect(frame.body).toEqual(bytes.subarray(5));
      expect(buf.message(BACKEND_LIMITS)!.frame).toEqual(trailing);
      expect(buf.length).toBe(0);
    }
  });

  it('a 64 KB message sent a byte at a time is copied about once, not once per byte; frames read stay whole', () => {
    const first = fe.password('token');
    const big = msg('p', Buffer.alloc(65_000, 0x61), Buffer.from([0]));
    const bytes = [...Buffer.concat([first, big])].map((b) => Buffer.from([b]));
    const buf = new HandshakeBuffer();
    const alloc = vi.spyOn(Buffer, 'allocUnsafe');
    const concat = vi.spyOn(Buffer, 'concat');
    let frame: Buffer | undefined;
    let allocated = 0;
    try {
      for (const b of bytes) {
        buf.push(b);
        frame ??= buf.message(PASSWORD_LIMITS)?.frame;
      }
      const results = [...alloc.mock.results, ...concat.mock.results];
      allocated = results.reduce((n, r) => n + (r.value as Buffer).length, 0);
    } finally {
      alloc.mockRestore();
      concat.mockRestore();
    }
    expect(allocated).toBeGreaterThan(big.length);
    expect(allocated).toBeLessThan(8 * big.length);
    expect(frame).toEqual(first);
    expect(buf.message(PASSWORD_LIMITS)!.frame).toEqual(big);
    expect(buf.length).toBe(0);
  });

  it('accepts only PasswordMessage while asking for a password', () => {
    const buf = new HandshakeBuffer();
    buf.push(fe.query('select 1'));
    expect(() => buf.message(PASSWORD_LIMITS)).toThrow("invalid frontend message type 'Q' (0x51)");
    const ok = new HandshakeBuffer();
    ok.push(fe.password('token'));
    expect(ok.message(PASSWORD_LIMITS)!.code).toBe(0x70);
  });
});

describe('MessageScanner', () => {
  const audited = codeSet([0x51, 0x50, 0x42, 0x43]);
  const stream = Buffer.concat([
    fe.query('select 1'),
    fe.parse('s1', 'select $1::int', [23]),
    fe.bind('', 's1', [0], [Buffer.from('42')]),
    fe.describe('P', ''),
    fe.execute(''),
    fe.sync(),
    fe.copyData(Buffer.alloc(300, 7)),
    fe.copyDone(),
    fe.close('S', 's1'),
    fe.flush(),
    fe.terminate(),
  ]);
  const expected = [
    [0x51, fe.query('select 1').subarray(5)],
    [0x50, fe.parse('s1', 'select $1::int', [23]).subarray(5)],
    [0x42, fe.bind('', 's1', [0], [Buffer.from('42')]).subarray(5)],
    [0x43, fe.close('S', 's1').subarray(5)],
  ];

  const scanAll = (chunks: Buffer[], limit?: number) => {
    const scanner = new MessageScanner(FRONTEND_LIMITS, audited, limit);
    const seen: [number, Buffer][] = [];
    for (const c of chunks) {
      expect(scanner.scan(c, (code, body) => seen.push([code, Buffer.from(body)]))).toBe(c.length);
    }
    return { seen, scanner };
  };

  it('captures the audited messages whole, whatever the cut', () => {
    for (const [a, b] of cuts(stream)) {
      const { seen, scanner } = scanAll([a, b]);
      expect(seen).toEqual(expected);
      expect(scanner.atBoundary).toBe(true);
    }
  });

  it('captures them from one-byte chunks', () => {
    const { seen } = scanAll([...stream].map((byte) => Buffer.from([byte])));
    expect(seen).toEqual(expected);
  });

  it('captures them from chunks cut at every pair of offsets', () => {
    const small = stream.subarray(0, 80);
    const head = scanAll([small]).seen;
    for (let i = 0; i < small.length; i++) {
      for (let j = i; j <= small.length; j++) {
        const { seen } = scanAll([small.subarray(0, i), small.subarray(i, j), small.subarray(j)]);
        expect(seen).toEqual(head);
      }
    }
  });

  it('names notified messages by code alone, in stream order with the captured ones, whatever the cut', () => {
    const mixed = codeSet([0x50], [0x53, 0x45, 0x58]); // capture Parse; notify Sync, Execute, Terminate
    for (const [a, b] of cuts(stream)) {
      const scanner = new MessageScanner(FRONTEND_LIMITS, mixed);
      const seen: string[] = [];
      for (const c of [a, b]) scanner.scan(c, (code, body) => seen.push(`${code}:${body.length}`));
      expect(seen).toEqual([
        `${0x50}:${(expected[1]![1] as Buffer).length}`,
        `${0x45}:0`,
        `${0x53}:0`,
        `${0x58}:0`,
      ]);
    }
  });

  it('keeps at most captureLimit bytes of a long message and says how long it was', () => {
    const long = fe.query('x'.repeat(1000));
    for (const [a, b] of cuts(long)) {
      const scanner = new MessageScanner(FRONTEND_LIMITS, audited, 100);
      const seen: [number, number][] = [];
      for (const c of [a, b])
        scanner.scan(c, (_code, body, bodyLength) => seen.push([body.length, bodyLength]));
      // Contiguous messages are handed over whole as a view; assembled ones are cut at the limit.
      const contiguous = a.length < 5 || b.length === 0;
      expect(seen).toEqual([[contiguous ? 1001 : 100, 1001]]);
    }
  });

  it('hashes the whole text of a message cut at the capture limit, whatever the cut', () => {
    const text = 'select ' + 'y'.repeat(300);
    const long = fe.query(text);
    const sha = createHash('sha256').update(text).digest('hex');
    for (const [a, b] of [...cuts(long)].filter(([x]) => x.length >= 5 && x.length < long.length)) {
      const scanner = new MessageScanner(FRONTEND_LIMITS, audited, 100);
      const seen: (string | undefined)[] = [];
      for (const c of [a, b]) scanner.scan(c, (_code, _body, _len, cutSha256) => seen.push(cutSha256));
      expect(seen).toEqual([sha]);
    }
  });

  it('stops at the end of the message in flight when asked (untilBoundary)', () => {
    const rows = Buffer.concat([be.dataRow(['a', 'b']), be.dataRow(['c']), be.readyForQuery()]);
    const first = be.dataRow(['a', 'b']).length;
    for (let i = 1; i < first; i++) {
      const scanner = new MessageScanner(BACKEND_LIMITS, codeSet([]));
      scanner.scan(rows.subarray(0, i), () => undefined);
      expect(scanner.atBoundary).toBe(false);
      expect(scanner.scan(rows.subarray(i), () => undefined, true)).toBe(first - i);
      expect(scanner.atBoundary).toBe(true);
      expect(scanner.scan(rows.subarray(first), () => undefined, true)).toBe(0);
    }
  });

  const bad: [string, Buffer, string, string][] = [
    ['an unknown type', msg(0x01), 'PROTOCOL_ERROR', 'invalid frontend message type 0x01'],
    ['a PasswordMessage after login', fe.password('x'), 'PROTOCOL_ERROR', "'p' (0x70)"],
    ['a length below 4', Buffer.from([0x51, 0, 0, 0, 3]), 'PROTOCOL_ERROR', 'invalid length 3'],
    ['a negative length', Buffer.from([0x51, 0x80, 0, 0, 0]), 'PROTOCOL_ERROR', 'invalid length -2147483648'],
    ['a 1 GiB Query', Buffer.from([0x51, 0x40, 0, 0, 0]), 'MESSAGE_TOO_LARGE', 'exceeds the limit'],
    [
      'a Sync over 10000 bytes',
      Buffer.from([0x53, 0, 0, 0x27, 0x15]),
      'MESSAGE_TOO_LARGE',
      "'S' (0x53) of 10005 bytes",
    ],
  ];
  it.each(bad)('refuses %s, however it is cut', (_name, bytes, code, message) => {
    for (const [a, b] of cuts(Buffer.concat([fe.sync(), bytes]))) {
      const scanner = new MessageScanner(FRONTEND_LIMITS, audited);
      const run = () => [a, b].forEach((c) => scanner.scan(c, () => undefined));
      expect(run).toThrow(expect.objectContaining({ code, message: expect.stringContaining(message) }));
    }
  });
});
