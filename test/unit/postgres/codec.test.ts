// Message bodies: decoders table-driven from the factory, serializer output read back by the parser.
import { describe, expect, it } from 'vitest';
import {
  decodeAuth,
  decodeBackendKey,
  decodeBind,
  decodeClose,
  decodeErrorFields,
  decodeParse,
  decodeParsePrefix,
  decodePassword,
  decodeQuery,
  ValueCursor,
} from '../../../src/engines/postgres/decoders.js';
import { BACKEND_LIMITS, HandshakeBuffer } from '../../../src/engines/postgres/parser.js';
import {
  AUTHENTICATION_CLEARTEXT,
  AUTHENTICATION_OK,
  ENCRYPTION_REFUSED,
  SSL_ACCEPTED,
  SSL_REQUEST,
  TERMINATE,
  backendKeyData,
  cancelRequest,
  errorResponse,
  negotiateProtocolVersion,
  passwordMessage,
  saslInitialResponse,
  saslResponse,
  startupMessage,
} from '../../../src/engines/postgres/serializer.js';
import { be, fe } from './factory.js';

const body = (m: Buffer) => m.subarray(5);

describe('decoders', () => {
  it('reads Query text, and the prefix of a cut one', () => {
    expect(decodeQuery(body(fe.query('select 1'))).toString()).toBe('select 1');
    expect(decodeQuery(Buffer.from('select 1, 2'), false).toString()).toBe('select 1, 2');
    expect(() => decodeQuery(Buffer.from('no terminator'))).toThrow('missing string terminator');
  });

  it('reads Parse, and the name and start of a cut one', () => {
    const p = decodeParse(body(fe.parse('s1', 'select $1', [23, 25])));
    expect({ statement: p.statement, query: p.query.toString() }).toEqual({
      statement: 's1',
      query: 'select $1',
    });
    const cut = decodeParsePrefix(body(fe.parse('s2', 'select 12345')).subarray(0, 8));
    expect({ statement: cut.statement, query: cut.query.toString() }).toEqual({
      statement: 's2',
      query: 'selec',
    });
  });

  const binds: [string, Buffer, { statement: string; values: (string | null)[]; binary: boolean[] }][] = [
    ['no parameters', fe.bind('', '', [], []), { statement: '', values: [], binary: [] }],
    [
      'text parameters (no format codes)',
      fe.bind('p1', 's1', [], [Buffer.from('a'), Buffer.from('bc')]),
      { statement: 's1', values: ['a', 'bc'], binary: [false, false] },
    ],
    [
      'one format for all',
      fe.bind('', 's', [1], [Buffer.from([1]), Buffer.from([2])], [1]),
      { statement: 's', values: ['\x01', '\x02'], binary: [true, true] },
    ],
    [
      'a format per parameter, with NULL',
      fe.bind('', 's', [0, 1, 0], [Buffer.from('x'), Buffer.from([9]), null], [0, 1]),
      { statement: 's', values: ['x', '\x09', null], binary: [false, true, false] },
    ],
  ];
  it.each(binds)('reads Bind with %s', (_name, bytes, expected) => {
    const b = decodeBind(body(bytes));
    expect({
      statement: b.statement,
      values: b.values.map((v) => v?.toString('latin1') ?? null),
      binary: b.binary,
    }).toEqual(expected);
  });

  const badBinds: [string, Buffer, string][] = [
    [
      'a format count that matches no parameter count',
      fe.bind('', '', [0, 0], [Buffer.from('a')]),
      '2 parameter formats for 1',
    ],
    ['a truncated value', body(fe.bind('', '', [], [Buffer.from('abcdef')])).subarray(0, 12), 'truncated'],
    [
      'a parameter length below -1',
      Buffer.from([0, 0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xfe, 0, 0]),
      'invalid parameter length -2',
    ],
    ['trailing bytes', Buffer.concat([body(fe.bind('', '', [], [])), Buffer.from([1])]), 'trailing'],
    ['a missing terminator', Buffer.from('portal'), 'missing string terminator'],
  ];
  it.each(badBinds)('refuses Bind with %s', (_name, bytes, message) => {
    expect(() => decodeBind(bytes.length > 5 && bytes[0] === 0x42 ? body(bytes) : bytes)).toThrow(message);
  });

  it('reads the names of a Bind after another as decoding them would, for every byte value', () => {
    // The cursor keeps recent names' strings and returns them again for the same ASCII bytes.
    const c = new ValueCursor();
    const open = (name: Buffer) => {
      c.openBind(Buffer.concat([name, Buffer.from([0]), name, Buffer.from([0, 0, 0, 0, 0, 0, 0])]));
      while (c.next());
      return [c.portal, c.statement];
    };
    for (let b = 1; b < 256; b++) {
      const bytes = Buffer.from([0x61, b, 0x62]);
      const decoded = bytes.toString('utf8');
      // After the same bytes, after no name, and after a name whose characters match the bytes'
      // codes (U+0080–U+00FF encode as two bytes each: equal codes are not equal bytes).
      for (const before of [bytes, Buffer.alloc(0), Buffer.from(`a${String.fromCharCode(b)}b`)]) {
        open(before);
        expect(open(bytes), `byte ${b} after ${before.toString('hex')}`).toEqual([decoded, decoded]);
      }
    }
    expect(open(Buffer.from('P_1'))).toEqual(['P_1', 'P_1']);
    expect(open(Buffer.from('P_2'))).toEqual(['P_2', 'P_2']);
    expect(open(Buffer.alloc(0))).toEqual(['', '']);
    // Names in turn, within and past what the cursor keeps, among them non-ASCII, long and near ones.
    const names = ['S_1', 'S_2', 'S_10', 'S_1é', 'S_1\xe9', 'x'.repeat(200), 'x'.repeat(199) + 'y'];
    for (const count of [4, 4, 7, 12, 3]) {
      for (let i = 0; i < count; i++) {
        const name = Buffer.from(names[i % names.length]!, i % names.length === 4 ? 'latin1' : 'utf8');
        const decoded = name.toString('utf8');
        expect(open(name), `${count} ${i}`).toEqual([decoded, decoded]);
      }
    }
  });

  it('reads Close, PasswordMessage and BackendKeyData', () => {
    expect(decodeClose(body(fe.close('S', 'stmt')))).toEqual({ target: 'statement', name: 'stmt' });
    expect(decodeClose(body(fe.close('P', '')))).toEqual({ target: 'portal', name: '' });
    expect(() => decodeClose(Buffer.from('Xname\0'))).toThrow("unknown target 'X'");
    expect(decodePassword(body(fe.password('tok.en.value')))).toBe('tok.en.value');
    expect(decodeBackendKey(body(be.backendKey(42, -7)))).toEqual({ processId: 42, secretKey: -7 });
  });

  it.each([
    ['ok', be.authOk(), { kind: 'ok' }],
    ['cleartext', be.authCleartext(), { kind: 'cleartext' }],
    ['md5', be.authMd5(Buffer.from([1, 2, 3, 4])), { kind: 'md5', salt: Buffer.from([1, 2, 3, 4]) }],
    [
      'sasl',
      be.authSasl(['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256']),
      { kind: 'sasl', mechanisms: ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256'] },
    ],
    [
      'sasl-continue',
      be.authSaslContinue('r=abc,s=c2FsdA==,i=4096'),
      { kind: 'sasl-continue', data: 'r=abc,s=c2FsdA==,i=4096' },
    ],
    ['sasl-final', be.authSaslFinal('v=sig'), { kind: 'sasl-final', data: 'v=sig' }],
    ['gss (unsupported)', be.authGss(), { kind: 'unsupported', code: 7 }],
  ])('reads Authentication %s', (_name, bytes, expected) => {
    expect(decodeAuth(body(bytes))).toEqual(expected);
  });

  it('reads ErrorResponse fields leniently', () => {
    const fields = decodeErrorFields(
      body(be.error({ S: 'FATAL', V: 'FATAL', C: '3D000', M: 'no db', H: 'hint', Z: 'other' })),
    );
    expect(fields).toEqual({ severity: 'FATAL', code: '3D000', message: 'no db', hint: 'hint' });
    expect(decodeErrorFields(Buffer.from('Mcut'))).toEqual({});
  });
});

describe('serializer', () => {
  const read = (bytes: Buffer) => {
    const buf = new HandshakeBuffer();
    buf.push(bytes);
    return buf;
  };

  it('writes the fixed messages byte for byte', () => {
    expect(SSL_ACCEPTED).toEqual(Buffer.from('S'));
    expect(ENCRYPTION_REFUSED).toEqual(Buffer.from('N'));
    expect(AUTHENTICATION_OK).toEqual(be.authOk());
    expect(AUTHENTICATION_CLEARTEXT).toEqual(be.authCleartext());
    expect(SSL_REQUEST).toEqual(fe.sslRequest());
    expect(TERMINATE).toEqual(fe.terminate());
    expect(cancelRequest(5, -6)).toEqual(fe.cancel(5, -6));
    expect(backendKeyData(5, -6)).toEqual(be.backendKey(5, -6));
    expect(passwordMessage('pw')).toEqual(fe.password('pw'));
  });

  it('writes a StartupMessage the parser reads back', () => {
    const params: [string, string][] = [
      ['user', 'alice'],
      ['database', 'orders'],
      ['options', '-c search_path=x'],
    ];
    expect(read(startupMessage(params)).startup()).toEqual({
      kind: 'startup',
      major: 3,
      minor: 0,
      params: new Map(params),
    });
  });

  it('writes ErrorResponse with severity, SQLSTATE, message and hint', () => {
    const frame = read(
      errorResponse({ severity: 'FATAL', code: '28000', message: 'denied', hint: 'ask' }),
    ).message(BACKEND_LIMITS)!;
    expect(frame.code).toBe(0x45);
    expect(decodeErrorFields(frame.body)).toEqual({
      severity: 'FATAL',
      code: '28000',
      message: 'denied',
      hint: 'ask',
    });
  });

  it('writes SASL responses and NegotiateProtocolVersion', () => {
    const initial = read(saslInitialResponse('SCRAM-SHA-256', 'n,,n=*,r=abc')).message(
      new Uint32Array(256).fill(1000),
    )!;
    expect(initial.body.toString('latin1')).toBe('SCRAM-SHA-256\0\0\0\0\x0cn,,n=*,r=abc');
    expect(saslResponse('c=biws').subarray(5).toString()).toBe('c=biws');
    const v = read(negotiateProtocolVersion(0, ['_pq_.x'])).message(BACKEND_LIMITS)!;
    expect(v.code).toBe(0x76);
    expect(v.body).toEqual(Buffer.from([0, 0, 0, 0, 0, 0, 0, 1, ...Buffer.from('_pq_.x\0')]));
  });
});
