// Request parser: table-driven, every message cut at every byte offset (TCP may split anywhere).
import { describe, expect, it } from 'vitest';
import { isDrawbridgeError } from '../../../src/errors.js';
import { auditArgs } from '../../../src/engines/redis/audit.js';
import { type RedisCommand, RequestParser, owned } from '../../../src/engines/redis/parser.js';
import { encodeCommand } from '../../../src/engines/redis/serializer.js';

const resp = (...args: string[]) => encodeCommand(args);

interface Case {
  name: string;
  input: Buffer;
  commands: string[][];
  names?: string[];
}

const cases: Case[] = [
  { name: 'simple GET', input: resp('GET', 'k'), commands: [['GET', 'k']], names: ['get'] },
  { name: 'empty bulk', input: resp('SET', 'k', ''), commands: [['SET', 'k', '']] },
  {
    name: 'binary value with CRLF inside',
    input: resp('SET', 'k', 'a\r\nb\r\n*2\r\n'),
    commands: [['SET', 'k', 'a\r\nb\r\n*2\r\n']],
  },
  {
    name: 'pipeline of three',
    input: Buffer.concat([resp('SET', 'a', '1'), resp('GET', 'a'), resp('PING')]),
    commands: [['SET', 'a', '1'], ['GET', 'a'], ['PING']],
    names: ['set', 'get', 'ping'],
  },
  {
    name: 'container command',
    input: resp('CONFIG', 'GET', 'maxmemory'),
    commands: [['CONFIG', 'GET', 'maxmemory']],
    names: ['config|get'],
  },
  { name: 'container without sub', input: resp('Client'), commands: [['Client']], names: ['client'] },
  { name: 'empty and null arrays are skipped', input: Buffer.from('*0\r\n*-1\r\n'), commands: [] },
  { name: 'inline', input: Buffer.from('GET key\r\n'), commands: [['GET', 'key']], names: ['get'] },
  { name: 'inline LF only', input: Buffer.from('ping\n'), commands: [['ping']] },
  { name: 'inline blank line ignored', input: Buffer.from('\r\n  \r\nPING\r\n'), commands: [['PING']] },
  {
    name: 'inline quotes',
    input: Buffer.from(`SET "a b" 'c\\'d' "\\x41\\n"\r\n`),
    commands: [['SET', 'a b', "c'd", 'A\n']],
  },
  {
    name: 'inline then multibulk',
    input: Buffer.concat([Buffer.from('PING\r\n'), resp('ECHO', 'x')]),
    commands: [['PING'], ['ECHO', 'x']],
  },
  {
    // RESP3 changes only replies: from a client, Redis reads these lines as inline commands too.
    name: 'RESP3 type bytes at the start of a line are inline words',
    input: Buffer.from('%1\r\n~2 a\r\n>1\r\n|1\r\n_\r\n'),
    commands: [['%1'], ['~2', 'a'], ['>1'], ['|1'], ['_']],
  },
  {
    name: 'unicode name folds ASCII only',
    input: resp('gEt', 'ключ'),
    commands: [['gEt', 'ключ']],
    names: ['get'],
  },
];

/** As the session parses: one reused object, each command kept as owned(cmd). */
function collect(chunks: Buffer[]): RedisCommand[] {
  const out: RedisCommand[] = [];
  const p = new RequestParser((c) => out.push(owned(c)), { reuse: true });
  for (const c of chunks) p.feed(c);
  expect(p.pending).toBe(0);
  return out;
}

const strings = (cmds: RedisCommand[]) => cmds.map((c) => c.args.map((a) => a.toString('utf8')));

describe('RequestParser', () => {
  for (const tc of cases) {
    it(`${tc.name}: whole, at every cut, byte by byte`, () => {
      const whole = collect([tc.input]);
      expect(strings(whole)).toEqual(tc.commands);
      if (tc.names) expect(whole.map((c) => c.name)).toEqual(tc.names);
      for (let i = 1; i < tc.input.length; i++) {
        const cut = collect([tc.input.subarray(0, i), tc.input.subarray(i)]);
        expect(strings(cut), `cut at ${i}`).toEqual(tc.commands);
      }
      const bytes = [...tc.input].map((b) => Buffer.from([b]));
      expect(strings(collect(bytes))).toEqual(tc.commands);
    });
  }

  it('raw is the exact multibulk bytes, args are slices of the input', () => {
    const input = Buffer.concat([resp('SET', 'k', 'v'), resp('GET', 'k')]);
    const cmds = collect([input]);
    expect(Buffer.concat(cmds.map((c) => c.raw))).toEqual(input);
    expect(cmds[0]!.args[2]!.buffer).toBe(input.buffer);
  });

  it('inline commands are re-encoded as RESP arrays for the backend', () => {
    const [cmd] = collect([Buffer.from('SET "a b" c\r\n')]);
    expect(cmd!.raw).toEqual(resp('SET', 'a b', 'c'));
  });

  it('a 10,000-command pipeline in one chunk', () => {
    const input = Buffer.concat(Array.from({ length: 10_000 }, (_, i) => resp('SET', `k${i}`, 'v')));
    const cmds = collect([input]);
    expect(cmds).toHaveLength(10_000);
    expect(cmds[9_999]!.args[1]!.toString()).toBe('k9999');
  });

  it('leaves the commands of a chunk in place: raw is bytes[offset, end) of that chunk', () => {
    const chunk = Buffer.concat([resp('SET', 'a', '1'), resp('GET', 'a')]);
    const [set, get] = collect([chunk]);
    expect(set!.bytes).toBe(chunk);
    expect(get!.bytes).toBe(chunk);
    expect([set!.offset, set!.end, get!.offset, get!.end]).toEqual([0, 27, 27, 47]);
    expect(get!.raw.toString()).toBe(resp('GET', 'a').toString());
    // Split across reads: in place in the bytes the parser joined them into.
    const [split] = collect([chunk.subarray(0, 10), chunk.subarray(10, 27)]);
    expect(split!.raw.toString()).toBe(resp('SET', 'a', '1').toString());
    expect(split!.bytes!.subarray(split!.offset, split!.end).equals(split!.raw)).toBe(true);
  });

  it('a 64 MB value in 64 KB chunks', () => {
    const value = Buffer.alloc(64 * 1024 * 1024, 0x61);
    value[value.length - 1] = 0x7a;
    const input = Buffer.concat([
      resp('SET', 'big'),
      Buffer.from(`$${value.length}\r\n`),
      value,
      Buffer.from('\r\n'),
    ]);
    input.write('*3', 0); // the header counted two args; make it three
    const chunks: Buffer[] = [];
    for (let i = 0; i < input.length; i += 65536) chunks.push(input.subarray(i, i + 65536));
    const [cmd] = collect(chunks);
    expect(cmd!.args[2]!.length).toBe(value.length);
    expect(cmd!.args[2]![value.length - 1]).toBe(0x7a);
  });

  const errors: [string, string, string][] = [
    ['missing $', '*1\r\n+GET\r\n', "expected '$', got '+'"],
    ['bad multibulk length', '*x\r\n', 'invalid multibulk length'],
    ['leading zero', '*01\r\n', 'invalid multibulk length'],
    ['negative bulk', '*1\r\n$-1\r\n', 'invalid bulk length'],
    ['unterminated bulk', '*1\r\n$1\r\nab\r\n', 'not terminated by CRLF'],
    ['unbalanced quotes', 'SET "a\r\n', 'unbalanced quotes'],
    ['closing quote glued', 'SET "a"b\r\n', 'unbalanced quotes'],
    ['NUL in inline', 'GET a\0b\r\n', 'unbalanced quotes'],
    ['too many args', '*2000000\r\n', 'invalid multibulk length'],
    // Client → server framing stays RESP2 under HELLO 3: no RESP3 types or streams inside a command.
    ['RESP3 map argument', '*1\r\n%1\r\n', "expected '$', got '%'"],
    ['RESP3 verbatim argument', '*1\r\n=5\r\ntxt:x\r\n', "expected '$', got '='"],
    ['streamed command', '*?\r\n$3\r\nGET\r\n.\r\n', 'invalid multibulk length'],
    ['streamed argument', '*1\r\n$?\r\n;3\r\nGET\r\n;0\r\n', 'invalid bulk length'],
  ];
  for (const [name, input, message] of errors) {
    it(`rejects ${name}`, () => {
      const p = new RequestParser(() => undefined);
      let err: unknown;
      try {
        p.feed(Buffer.from(input));
      } catch (e) {
        err = e;
      }
      expect(isDrawbridgeError(err, 'PROTOCOL_ERROR')).toBe(true);
      expect((err as Error).message).toContain(message);
    });
  }

  const tooLarge = (p: RequestParser, input: string | Buffer) => {
    try {
      p.feed(Buffer.from(input));
    } catch (err) {
      expect(isDrawbridgeError(err, 'MESSAGE_TOO_LARGE')).toBe(true);
      return (err as Error).message;
    }
    return 'accepted';
  };

  it('rejects a bulk longer than maxBulk as soon as its header arrives', () => {
    const p = new RequestParser(() => undefined, { maxBulk: 1000 });
    expect(tooLarge(p, '*1\r\n$1001\r\n')).toBe('Protocol error: invalid bulk length');
  });

  // Redis's own limits before AUTH (networking.c), the same texts.
  const unauthenticated: [string, string, string][] = [
    ['11 arguments', '*11\r\n', 'Protocol error: unauthenticated multibulk length'],
    ['a 16385-byte bulk', '*1\r\n$16385\r\n', 'Protocol error: unauthenticated bulk length'],
    ['the stranger’s 512 MB bulk', '*1\r\n$536870000\r\n', 'Protocol error: unauthenticated bulk length'],
    ['an inline line over 16 KB', 'a'.repeat(16 * 1024 + 1), 'Protocol error: too big inline request'],
  ];
  for (const [name, input, message] of unauthenticated) {
    it(`before authentication rejects ${name}`, () => {
      expect(tooLarge(new RequestParser(() => undefined, { unauthenticated: true }), input)).toBe(message);
    });
  }

  it('before authentication accepts 10 arguments of 16 KB (a token AUTH fits)', () => {
    const got: string[] = [];
    const p = new RequestParser((c) => got.push(c.name), { unauthenticated: true });
    const arg = 'x'.repeat(16 * 1024);
    p.feed(Buffer.from(`*10\r\n$4\r\nauth\r\n${`$${arg.length}\r\n${arg}\r\n`.repeat(9)}`));
    expect(got).toEqual(['auth']);
  });

  it('after authenticated() takes commands up to the new maximum, and no larger', () => {
    const got: number[] = [];
    const p = new RequestParser((c) => got.push(c.args[1]!.length), { unauthenticated: true });
    p.authenticated(100_000);
    p.feed(Buffer.from(`*2\r\n$3\r\nset\r\n$50000\r\n${'v'.repeat(50_000)}\r\n`));
    expect(got).toEqual([50_000]);
    expect(tooLarge(p, '*2\r\n$3\r\nset\r\n$100001\r\n')).toBe('Protocol error: invalid bulk length');
  });

  it('stopped after an AUTH, reads the rest of the pipeline with the limits of its outcome', () => {
    const big = `*3\r\n$3\r\nset\r\n$1\r\nk\r\n$50000\r\n${'v'.repeat(50_000)}\r\n`;
    const input = Buffer.concat([resp('AUTH', 'u', 'p'), Buffer.from(big), resp('GET', 'k')]);
    const run = (login: boolean) => {
      const got: string[] = [];
      const p = new RequestParser(
        (c) => {
          got.push(c.name);
          if (c.name === 'auth') p.stop();
        },
        { unauthenticated: true },
      );
      p.feed(input.subarray(0, 30));
      p.feed(input.subarray(30));
      expect(got).toEqual(['auth']);
      expect(p.pending).toBe(input.length - resp('AUTH', 'u', 'p').length);
      if (login) p.authenticated(100_000);
      return { got, resume: () => p.resume() };
    };
    const ok = run(true);
    ok.resume();
    expect(ok.got).toEqual(['auth', 'set', 'get']);
    expect(() => run(false).resume()).toThrow(/unauthenticated bulk length/);
  });

  it('rejects an inline line longer than maxInline without waiting for its end', () => {
    const p = new RequestParser(() => undefined, { maxInline: 100 });
    expect(() => p.feed(Buffer.alloc(200, 0x61))).toThrow(/too big inline request/);
  });

  it('rejects a command larger than maxCommand', () => {
    const p = new RequestParser(() => undefined, { maxCommand: 1000 });
    p.feed(Buffer.from('*1\r\n$5000\r\n'));
    expect(() => p.feed(Buffer.alloc(2000))).toThrow(expect.objectContaining({ code: 'MESSAGE_TOO_LARGE' }));
  });

  it('reuse: one object for every command, valid during the call; owned() keeps each command whole', () => {
    const seen: RedisCommand[] = [];
    const kept: RedisCommand[] = [];
    const during: string[][] = [];
    const p = new RequestParser(
      (c) => {
        seen.push(c);
        during.push([c.name, ...auditArgs(c, 100)]);
        kept.push(owned(c));
      },
      { reuse: true },
    );
    const big = Array.from({ length: 40 }, (_, i) => `k${i}`);
    const input = Buffer.concat([
      resp('SET', 'a', 'secret-of-a'),
      resp('AUTH', 'app', 'password'),
      resp('CONFIG', 'GET', 'maxmemory'),
      resp('DEL', ...big), // more arguments than the reused spans hold
      resp('GET', 'b'),
    ]);
    const want = [
      ['set', 'a', 'secret-of-a'],
      ['auth', 'app', '[redacted]'],
      ['config|get', 'GET', 'maxmemory'],
      ['del', ...big],
      ['get', 'b'],
    ];
    // Fed whole and cut in two inside the second command (its end arrives in the next read).
    for (const chunks of [[input], [input.subarray(0, 40), input.subarray(40)]]) {
      seen.length = kept.length = during.length = 0;
      for (const c of chunks) p.feed(c);
      expect(during).toEqual(want);
      expect(new Set(seen).size).toBe(1);
      // Kept commands still read as themselves after the parser moved on: names, arguments, bytes.
      expect(kept.map((c) => [c.name, ...auditArgs(c, 100)])).toEqual(want);
      expect(kept[0]!.raw.toString()).toBe(resp('SET', 'a', 'secret-of-a').toString());
      expect(kept[4]!.args.map(String)).toEqual(['GET', 'b']);
      expect(kept.every((c) => owned(c) === c)).toBe(true);
      // Between reads the reused object holds no command (nor the chunk it came in).
      expect(seen[0]!.name).toBe('');
      expect(seen[0]!.raw.length).toBe(0);
      expect(seen[0]!.args).toEqual([]);
    }
  });
});
