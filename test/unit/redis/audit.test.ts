// Audit arguments of Redis commands: secrets redacted, values past the Database's
// spec.audit.maxValueLength cut with their size and SHA-256, and the direct writer's bytes equal to
// auditJson of the same arguments within the room it reserved, at the boundary lengths; a
// session's command lines follow its user and each command's name, and carry the time of their read
// (the line head keeps the sink's time bytes and must follow every millisecond).
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { JsonLinesAudit, auditJson } from '../../../src/agent/audit.js';
import { createLogger } from '../../../src/log.js';
import { DEFAULT_MAX_AUDIT_VALUE } from '../../../src/api/database.js';
import {
  AUDIT_ARGS_SHOWN,
  AUDIT_JSON_SHOWN,
  argsJsonMaxBytes,
  auditArgs,
  writeArgsJson,
} from '../../../src/engines/redis/audit.js';
import { type RedisCommand, RequestParser } from '../../../src/engines/redis/parser.js';
import { encodeCommand } from '../../../src/engines/redis/serializer.js';
import { SessionAudit } from '../../../src/engines/redis/session-audit.js';
import type { SessionLogin } from '../../../src/engines/redis/session-login.js';
import type { AgentRuntime } from '../../../src/agent/engine.js';

const b = (s: string) => Buffer.from(s);
const cmd = (...args: string[]): RedisCommand => {
  let out: RedisCommand | undefined;
  new RequestParser((c) => (out = c)).feed(encodeCommand(args));
  return out!;
};

/** What writeArgsJson puts in the audit batch, as text (within the room it asked for). */
function auditArgsJson(c: RedisCommand, max = DEFAULT_MAX_AUDIT_VALUE): string {
  const room = argsJsonMaxBytes(c, max);
  const buf = Buffer.alloc(room + 8, 0xee);
  const end = writeArgsJson(buf, 4, c, max);
  expect(end - 4).toBeLessThanOrEqual(room);
  expect(buf[end]).toBe(0xee); // nothing written past the end it returned
  return buf.toString('utf8', 4, end);
}

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
    expect(auditArgs(c, DEFAULT_MAX_AUDIT_VALUE)).toEqual(expected);
    expect(JSON.parse(auditArgsJson(c))).toEqual(expected);
  });

  it.each([256, DEFAULT_MAX_AUDIT_VALUE, 5000])(
    'serializes any bytes exactly as auditJson(auditArgs) does, with a limit of %i',
    (max) => {
      const odd = [
        Buffer.from('a"b\\c\n\t\u0000\u007f'),
        Buffer.from('é€😀', 'utf8'),
        Buffer.from([0xff, 0xc3, 0x28, 0x41]), // invalid UTF-8
        Buffer.alloc(max - 1, 0x61),
        Buffer.alloc(max, 0x61),
        Buffer.alloc(max + 1, 0x61), // cut with length and hash
        Buffer.concat([Buffer.alloc(max - 1, 0x61), Buffer.from('é')]), // cut inside a character
        Buffer.from('é'.repeat(max / 2)), // max bytes, none ASCII: whole
        Buffer.from('😀'.repeat(max)), // 4 bytes each: cut
        Buffer.alloc(max, 0x01), // the most escaping: \u0001 for every byte
        Buffer.alloc(max + 1, 0x01),
        Buffer.alloc(100_000, 0x01), // cut, escaped, with its length and hash
      ];
      const all: RedisCommand = { name: 'set', args: [b('SET'), ...odd], raw: Buffer.alloc(0) };
      expect(auditArgsJson(all, max)).toBe(auditJson(auditArgs(all, max)));
      // Each alone, so no other argument's slack hides one's overrun.
      for (const arg of odd) {
        const one: RedisCommand = { name: 'echo', args: [b('ECHO'), arg], raw: Buffer.alloc(0) };
        expect(auditArgsJson(one, max)).toBe(auditJson(auditArgs(one, max)));
      }
    },
  );

  it('escapes what a log viewer would hide or act on (bidirectional overrides, zero-width, C1, DEL)', () => {
    const hidden = ['user:\u202enimda', 'a\u200bb\u0085\u2028\u{e0041}', 'del\u007f'];
    const text = auditArgsJson(cmd('MSET', hidden[0]!, hidden[1]!, hidden[2]!, ''));
    expect(text).toBe('["user:\\u202enimda","a\\u200bb\\u0085\\u2028\\udb40\\udc41","del\\u007f",""]');
    expect(JSON.parse(text)).toEqual([...hidden, '']);
  });

  it('shows values up to the limit whole and cuts longer ones with their size and SHA-256', () => {
    const max = 300;
    const sha = (v: Buffer) => createHash('sha256').update(v).digest('hex');
    const shown = (v: Buffer) => {
      const c: RedisCommand = { name: 'set', args: [b('SET'), b('k'), v], raw: Buffer.alloc(0) };
      return (JSON.parse(auditArgsJson(c, max)) as string[])[1];
    };
    const a = (n: number) => Buffer.alloc(n, 0x61);
    expect(shown(a(max - 1))).toBe('a'.repeat(max - 1));
    expect(shown(a(max))).toBe('a'.repeat(max));
    expect(shown(a(max + 1))).toBe(`${'a'.repeat(max)}…[${max + 1} bytes sha256:${sha(a(max + 1))}]`);
    const split = Buffer.concat([a(max - 1), b('é')]);
    expect(shown(split)).toBe(`${'a'.repeat(max - 1)}\ufffd…[${max + 1} bytes sha256:${sha(split)}]`);
    const quotes = Buffer.alloc(max + 1, 0x22); // `"` escaped as \" in the line, whole in the value
    expect(shown(quotes)).toBe(`${'"'.repeat(max)}…[${max + 1} bytes sha256:${sha(quotes)}]`);
    // The room reserved follows the limit: a long argument reserves more under a higher one.
    const long: RedisCommand = { name: 'set', args: [b('SET'), a(5000)], raw: Buffer.alloc(0) };
    expect(argsJsonMaxBytes(long, 4096)).toBeGreaterThan(argsJsonMaxBytes(long, 300));
  });

  // A command of a million one-byte control characters (7 MB on the wire) would be ~11 MB of JSON, and
  // the 128 MiB allowed ~200 MB: one line is bounded, the rest counted and hashed as RESP bulk strings.
  const restOf = (args: Buffer[]) => {
    const h = createHash('sha256');
    for (const v of args) h.update(`$${v.length}\r\n`).update(v).update('\r\n');
    return `${args.length} more argument${args.length === 1 ? '' : 's'}, ${args.reduce((n, v) => n + v.length, 0)} bytes sha256:${h.digest('hex')}`;
  };

  it('shows at most AUDIT_ARGS_SHOWN arguments of a command, then the rest as one mark', () => {
    const args = Array.from({ length: 1_000_000 }, (_, i) => Buffer.from([1 + (i % 30)]));
    const shown = auditArgs({ name: 'exists', args: [b('EXISTS'), ...args], raw: Buffer.alloc(0) }, 4096);
    expect(shown).toHaveLength(AUDIT_ARGS_SHOWN + 1);
    expect(shown[AUDIT_ARGS_SHOWN - 1]).toBe(args[AUDIT_ARGS_SHOWN - 1]!.toString());
    expect(shown[AUDIT_ARGS_SHOWN]).toBe(`…[${restOf(args.slice(AUDIT_ARGS_SHOWN))}]`);
    expect(JSON.stringify(shown).length).toBeLessThan(1_000_000);
  });

  it('shows arguments until AUDIT_JSON_SHOWN bytes of JSON, then the rest as one mark, secrets hashed as [redacted]', () => {
    const big = Buffer.alloc(AUDIT_JSON_SHOWN / 12 + 1, 0x01); // two: over AUDIT_JSON_SHOWN, six a byte
    const c: RedisCommand = {
      name: 'mset',
      args: [b('MSET'), big, big, b('k'), b('v')],
      raw: Buffer.alloc(0),
    };
    const shown = auditArgs(c, big.length);
    expect(shown.slice(0, 2)).toEqual([big.toString(), big.toString()]);
    expect(shown[2]).toBe(`…[${restOf([b('k'), b('v')])}]`);
    const auth = cmd(
      'ACL',
      'SETUSER',
      'u',
      ...Array.from({ length: AUDIT_ARGS_SHOWN - 2 }, () => 'on'),
      '>pw',
    );
    const mark = auditArgs(auth, 4096).at(-1)!;
    expect(mark).toBe(`…[${restOf([b('[redacted]')])}]`);
  });
});

describe('SessionAudit command lines', () => {
  it("carry the session's current user and each command's own name, however commands alternate", () => {
    const lines: string[] = [];
    const batch = Buffer.alloc(1 << 16);
    const sink = {
      emit: (e: object) => lines.push(JSON.stringify(e)),
      emitWith: (max: number, w: { writeAuditEvent(buf: Buffer, at: number): number }) => {
        const end = w.writeAuditEvent(batch, 0);
        expect(end).toBeLessThanOrEqual(max);
        lines.push(`{"time":0${batch.toString('utf8', 0, end)}`);
      },
      close: async () => undefined,
    };
    const database = { metadata: { name: 'cache' }, spec: { audit: { maxValueLength: 64 } } };
    const login = { user: 'alice', dbUser: 'default' };
    const audit = new SessionAudit({
      id: 's1',
      agent: { audit: sink, state: { database } } as unknown as AgentRuntime,
      login: login as unknown as SessionLogin,
    });
    const names = Array.from({ length: 70 }, (_, i) => `cmd${i}`); // more than a session keeps heads for
    const sent: [string, string, string][] = [];
    const send = (name: string, key: string) => {
      audit.command(cmd(name.toUpperCase(), key));
      sent.push([login.dbUser, name, key]);
    };
    send('get', 'a');
    send('get', 'b');
    send('set', 'c');
    send('get', 'd');
    login.dbUser = 'app'; // AUTH as another user: the next line says so
    send('get', 'e');
    database.metadata.name = 'renamed';
    send('get', 'f');
    for (const name of names) send(name, name);
    send('get', 'g');
    const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed.map((e) => [e.dbUser, e.command, (e.args as string[])[0]])).toEqual(sent);
    expect(parsed.map((e) => e.database)).toEqual([...Array(5).fill('cache'), ...Array(72).fill('renamed')]);
    expect(parsed[0]).toEqual({
      time: 0,
      type: 'command',
      sessionId: 's1',
      database: 'cache',
      protocol: 'redis',
      user: 'alice',
      dbUser: 'default',
      command: 'get',
      args: ['a'],
    });
  });
});

describe('SessionAudit command lines through the file sink', () => {
  it('carry the time of their read, as the millisecond and the second change under a kept head', async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-redis-audit-'));
    try {
      const file = path.join(dir, 'audit.jsonl');
      const sink = new JsonLinesAudit(file, createLogger('test', 'silent'));
      const database = { metadata: { name: 'cache' }, spec: { audit: { maxValueLength: 64 } } };
      const audit = new SessionAudit({
        id: 's1',
        agent: { audit: sink, state: { database } } as unknown as AgentRuntime,
        login: { user: 'alice', dbUser: 'default' } as unknown as SessionLogin,
      });
      const t0 = Date.UTC(2026, 11, 7, 9, 30, 59, 998);
      // The same ms twice, the next ms, the next second, back to an earlier one, another command
      // between: each line's head is reused, its time bytes may not be.
      const sent: [number, string][] = [
        [t0, 'get'],
        [t0, 'get'],
        [t0 + 1, 'get'],
        [t0 + 2, 'get'],
        [t0 + 2, 'set'],
        [t0 + 3, 'get'],
        [t0 + 1003, 'get'],
        [t0 + 1, 'get'],
        [t0 + 1, 'set'],
      ];
      for (const [at, name] of sent) {
        audit.readAt = at;
        audit.command(cmd(name.toUpperCase(), 'k'));
      }
      await sink.close();
      const lines = (await readFile(file, 'utf8')).split('\n').filter(Boolean);
      const parsed = lines.map((l) => JSON.parse(l) as { time: string; command: string });
      expect(parsed.map((e) => [e.time, e.command])).toEqual(
        sent.map(([at, name]) => [new Date(at).toISOString(), name]),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
