// Pure parts of the Redis engine: command names, the catalog from COMMAND, audit redaction, reply
// ordering and write batching.
import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { argsJsonMaxBytes, auditArgs, writeArgsJson } from '../../../src/engines/redis/audit.js';

/** What writeArgsJson puts in the audit batch, as text (within the room it asked for). */
function auditArgsJson(c: RedisCommand): string {
  const room = argsJsonMaxBytes(c);
  const buf = Buffer.alloc(room + 8, 0xee);
  const end = writeArgsJson(buf, 4, c);
  expect(end - 4).toBeLessThanOrEqual(room);
  expect(buf[end]).toBe(0xee); // nothing written past the end it returned
  return buf.toString('utf8', 4, end);
}
import { catalogFromCommandReply, helloFields } from '../../../src/engines/redis/command-catalog.js';
import { commandName, lowerAscii } from '../../../src/engines/redis/command-name.js';
import { type RedisCommand, RequestParser } from '../../../src/engines/redis/parser.js';
import { decodeReply } from '../../../src/engines/redis/reply-parser.js';
import { ReplyQueue } from '../../../src/engines/redis/reply-queue.js';
import { encodeCommand, encodeValue } from '../../../src/engines/redis/serializer.js';
import { WriteBatcher } from '../../../src/engines/redis/write-batcher.js';

const b = (s: string) => Buffer.from(s);
const cmd = (...args: string[]): RedisCommand => {
  let out: RedisCommand | undefined;
  new RequestParser((c) => (out = c)).feed(encodeCommand(args));
  return out!;
};

class Recorder extends Writable {
  writes: string[] = [];
  override _writev(chunks: { chunk: Buffer }[], cb: () => void): void {
    this.writes.push(chunks.map((c) => c.chunk.toString()).join('|'));
    cb();
  }
  override _write(chunk: Buffer, _e: string, cb: () => void): void {
    this.writes.push(chunk.toString());
    cb();
  }
}
const tick = () => new Promise((r) => setImmediate(r));

describe('command names', () => {
  it.each([
    [['GET', 'k'], 'get'],
    [['Config', 'GET', 'x'], 'config|get'],
    [['client', 'KILL'], 'client|kill'],
    [['CONFIG'], 'config'],
    [['get', 'CONFIG'], 'get'],
    [['\u00c9CHO'], '\u00c9cho'], // only ASCII letters fold, like Redis's strcasecmp
  ])('%j → %s', (args, name) => {
    expect(commandName(args.map((a) => Buffer.from(a, 'latin1')))).toBe(name);
  });

  it('interns names: the same string object comes back, and colliding names stay correct', () => {
    expect(lowerAscii(b('SET'))).toBe(lowerAscii(b('set')));
    const names = Array.from({ length: 5000 }, (_, i) => `cmd${i}`);
    for (const n of names) expect(lowerAscii(b(n.toUpperCase()))).toBe(n);
  });
});

describe('command catalog', () => {
  const reply = decodeReply(
    encodeValue([
      [b('get'), 2, ['readonly', 'fast'], 1, 1, 1, ['@read', '@string', '@fast'], [], [], []],
      [
        b('config'),
        -2,
        [],
        0,
        0,
        0,
        ['@slow'],
        [],
        [],
        [
          [b('config|get'), -3, [], 0, 0, 0, ['@admin', '@slow', '@dangerous'], [], [], []],
          [b('config|set'), -4, [], 0, 0, 0, ['@admin', '@slow', '@dangerous'], [], [], []],
        ],
      ],
    ]),
  );

  it('learns categories for commands and subcommands, and which commands are containers', () => {
    const { commands, containers } = catalogFromCommandReply(reply);
    expect(commands.get('get')).toEqual({ name: 'get', categories: ['read', 'string', 'fast'] });
    expect(commands.get('config|get')?.categories).toContain('dangerous');
    expect([...containers]).toEqual(['config']);
  });

  it('reads version and cluster mode from HELLO', () => {
    const hello = (mode: string) =>
      decodeReply(
        encodeValue([b('server'), b('redis'), b('version'), b('7.0.15'), b('proto'), 2, b('mode'), b(mode)]),
      );
    expect(helloFields(hello('cluster'))).toEqual({ version: '7.0.15', clusterEnabled: true });
    expect(helloFields(hello('standalone')).clusterEnabled).toBe(false);
  });
});

describe('audit arguments', () => {
  it.each([
    [cmd('AUTH', 'pw'), ['[redacted]']],
    [cmd('AUTH', 'app', 'pw'), ['app', '[redacted]']],
    [
      cmd('HELLO', '2', 'SETNAME', 'auth', 'AUTH', 'u', 'pw'),
      ['2', 'SETNAME', 'auth', 'AUTH', 'u', '[redacted]'],
    ],
    [
      cmd('MIGRATE', 'h', '1', 'auth', '0', '5000', 'AUTH', 'pw', 'KEYS', 'auth'),
      ['h', '1', 'auth', '0', '5000', 'AUTH', '[redacted]', 'KEYS', 'auth'],
    ],
    [
      cmd('MIGRATE', 'h', '1', '', '0', '5000', 'AUTH2', 'u', 'pw'),
      ['h', '1', '', '0', '5000', 'AUTH2', 'u', '[redacted]'],
    ],
    [
      cmd('ACL', 'SETUSER', 'bob', 'on', '>pw', '#abc', '~*'),
      ['SETUSER', 'bob', 'on', '[redacted]', '[redacted]', '~*'],
    ],
    [
      cmd('CONFIG', 'SET', 'requirepass', 'pw', 'maxmemory', '1'),
      ['SET', 'requirepass', '[redacted]', 'maxmemory', '1'],
    ],
    [
      cmd('ACL', 'SETUSER', 'bob', 'on >pw', '(~k <pw)', '~a#b'),
      ['SETUSER', 'bob', '[redacted]', '[redacted]', '~a#b'],
    ],
    [
      cmd('CONFIG', 'SET', 'maxmemory', '1', 'PrimaryAuth', 'pw'),
      ['SET', 'maxmemory', '1', 'PrimaryAuth', '[redacted]'],
    ],
    [cmd('SET', 'k', 'v'), ['k', 'v']],
  ])('%#: %j', (c, expected) => {
    expect(auditArgs(c)).toEqual(expected);
    expect(JSON.parse(auditArgsJson(c))).toEqual(expected);
  });

  it('serializes any bytes exactly as JSON.stringify(auditArgs) does', () => {
    const odd = [
      Buffer.from('a"b\\c\n\t\u0000\u007f'),
      Buffer.from('é€😀', 'utf8'),
      Buffer.from([0xff, 0xc3, 0x28, 0x41]), // invalid UTF-8
      Buffer.alloc(256, 0x61),
      Buffer.alloc(257, 0x61), // cut with length and hash
      Buffer.concat([Buffer.alloc(255, 0x61), Buffer.from('é')]),
      Buffer.alloc(256, 0x01), // the most escaping: \u0001 for every byte
      Buffer.alloc(100_000, 0x01), // cut, escaped, with its length and hash
    ];
    const c: RedisCommand = { name: 'set', args: [b('SET'), ...odd], raw: Buffer.alloc(0) };
    expect(auditArgsJson(c)).toBe(JSON.stringify(auditArgs(c)));
    // Alone, so no other argument's slack hides a cut one's overrun.
    const one: RedisCommand = { name: 'echo', args: [b('ECHO'), odd.at(-1)!], raw: Buffer.alloc(0) };
    expect(auditArgsJson(one)).toBe(JSON.stringify(auditArgs(one)));
  });
});

describe('ReplyQueue', () => {
  it('writes replies in reservation order whatever order they are filled in', async () => {
    const out = new Recorder();
    const q = new ReplyQueue(out);
    const [a, bb, c] = [q.reserve(), q.reserve(), q.reserve()];
    q.fill(c, b('C'));
    q.fill(bb, b('B'));
    q.push(b('D')); // local reply: after the three reserved ones
    expect(q.pending).toBe(4);
    q.fill(a, b('A'));
    await tick();
    expect(out.writes.join('|')).toBe('A|B|C|D');
    expect(q.pending).toBe(0);
  });

  it('afterAll runs once the last waiting reply is written', () => {
    const q = new ReplyQueue(new Recorder());
    const seq = q.reserve();
    let done = false;
    q.afterAll(() => (done = true));
    expect(done).toBe(false);
    q.fill(seq, b('+OK\r\n'));
    expect(done).toBe(true);
  });
});

describe('WriteBatcher', () => {
  it('merges adjacent slices of one chunk into one write and batches the rest in one writev', async () => {
    const out = new Recorder();
    const w = new WriteBatcher(out);
    const chunk = b('+A\r\n+B\r\n+C\r\n');
    w.write(chunk.subarray(0, 4));
    w.write(chunk.subarray(4, 8));
    w.write(b('-LOCAL\r\n'));
    w.write(chunk.subarray(8));
    expect(out.writes).toEqual([]); // nothing leaves before the end of the turn
    await tick();
    expect(out.writes).toEqual(['+A\r\n+B\r\n|-LOCAL\r\n|+C\r\n']);
  });
});
