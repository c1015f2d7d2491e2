// Hostile: a value too long to read in the audit log must still be identifiable there. Commands are
// played through the real agent against a real Redis 7 and the real audit file is read: values past
// the Database's spec.audit.maxValueLength end in their size and the SHA-256 of the whole value, and
// a changed limit applies at once, also to a session already open.
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { exchange, pipeline } from './resp.js';

let f: RedisFixture;
let ops: TLSSocket;

beforeAll(async () => {
  f = await startRedisFixture();
  ops = await f.raw('ops');
}, 60_000);

afterAll(async () => {
  ops?.destroy();
  await f?.stop();
});

const sha = (v: string) => createHash('sha256').update(v).digest('hex');
let keys = 0;

/** RESP for SET `key` `value`, the value as given (bytes that are not UTF-8 too). */
const setBytes = (key: string, value: Buffer) =>
  Buffer.concat([
    Buffer.from(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${value.length}\r\n`),
    value,
    Buffer.from('\r\n'),
  ]);

/** Runs SET key value through the agent; returns the value as its `command` event shows it. */
async function auditedValue(value: string | Buffer): Promise<string> {
  const key = `audit-limit-${keys++}`;
  const set = typeof value === 'string' ? pipeline([['SET', key, value]]) : setBytes(key, value);
  expect(await exchange(ops, set, 1)).toEqual(['OK']);
  for (let i = 0; ; i++) {
    const event = (await f.agent.auditEvents()).find(
      (e) => e.type === 'command' && e.command === 'set' && (e.args as string[])[0] === key,
    );
    if (event) return (event.args as string[])[1]!;
    if (i === 30) throw new Error(`no audit event for ${key}`);
    await sleep(100);
  }
}

/** auditedValue(value) once the agent shows it as `expected` (it polls its config file), or after 10 s. */
async function auditedOnceReloaded(value: string, expected: string): Promise<string> {
  let shown = await auditedValue(value);
  for (let i = 0; shown !== expected && i < 50; i++) {
    await sleep(200);
    shown = await auditedValue(value);
  }
  return shown;
}

/** The `cache` docs with its Database's spec.audit set to `audit`. */
function docsWith(audit: object): object[] {
  return redisDocs(f.redis).map((d) => {
    const doc = d as { kind: string; spec: object };
    return doc.kind === 'Database' ? { ...doc, spec: { ...doc.spec, audit } } : d;
  });
}

describe('long values in Redis audit events', () => {
  it('are whole up to the default 4096 bytes and cut past it with the SHA-256 of the whole value', async () => {
    const whole = 'w'.repeat(1000);
    expect(await auditedValue(whole)).toBe(whole);
    const atLimit = 'x'.repeat(4096);
    expect(await auditedValue(atLimit)).toBe(atLimit);
    const long = 'y'.repeat(4000) + 'z'.repeat(1000);
    expect(await auditedValue(long)).toBe(`${long.slice(0, 4096)}…[5000 bytes sha256:${sha(long)}]`);
    const unicode = 'é'.repeat(2500); // 5000 bytes: cut by bytes, hashed whole
    expect(await auditedValue(unicode)).toBe(`${'é'.repeat(2048)}…[5000 bytes sha256:${sha(unicode)}]`);
  });

  it('that are not UTF-8 are told apart: the SHA-256 of their bytes follows what UTF-8 makes of them', async () => {
    const shown = await Promise.all(
      [[0xff], [0xfe], [0xef, 0xbf, 0xbd], [0x61, 0xc3]].map((b) => auditedValue(Buffer.from(b))),
    );
    const shaOf = (b: number[]) => createHash('sha256').update(Buffer.from(b)).digest('hex');
    expect(shown).toEqual([
      `\ufffd…[1 bytes sha256:${shaOf([0xff])}]`,
      `\ufffd…[1 bytes sha256:${shaOf([0xfe])}]`,
      '\ufffd', // the character U+FFFD itself, valid UTF-8
      `a\ufffd…[2 bytes sha256:${shaOf([0x61, 0xc3])}]`,
    ]);
  });

  it('a command of 300,000 control-character keys: its line shows 65,536 and hashes the rest', async () => {
    // Written out whole, each one-byte key is ~9 bytes of JSON: a 128 MiB command of them would need
    // gigabytes of the agent's memory for one line. The line is bounded; the rest is counted and hashed.
    const keys = Array.from({ length: 300_000 }, (_, i) => String.fromCharCode(1 + (i % 30)));
    expect(await exchange(ops, pipeline([['EXISTS', ...keys]]), 1)).toEqual([0]);
    let event: Record<string, unknown> | undefined;
    for (let i = 0; !event && i < 30; i++) {
      event = (await f.agent.auditEvents()).find((e) => e.type === 'command' && e.command === 'exists');
      if (!event) await sleep(100);
    }
    const args = event!.args as string[];
    expect(args).toHaveLength(65_537);
    expect(args.slice(0, 3)).toEqual(keys.slice(0, 3));
    const rest = createHash('sha256');
    for (const k of keys.slice(65_536)) rest.update(`$1\r\n${k}\r\n`);
    expect(args[65_536]).toBe(
      `…[${300_000 - 65_536} more arguments, ${300_000 - 65_536} bytes sha256:${rest.digest('hex')}]`,
    );
    expect(await exchange(ops, pipeline([['PING']]), 1)).toEqual(['PONG']); // the session goes on
  });

  it('a refused AUTH of a 2 MiB name of control characters: session.denied shows it cut', async () => {
    // AUTH as another user is refused while CLIENT TRACKING is on; the refusal names the user. Whole,
    // the name took six bytes a byte in dbUser and again in the reason: a 24 MiB line for this one.
    const s = await f.raw('ops');
    try {
      expect(
        await exchange(
          s,
          pipeline([
            ['HELLO', '3'],
            ['CLIENT', 'TRACKING', 'ON'],
          ]),
          2,
        ),
      ).toHaveLength(2);
      const name = '\x01'.repeat(2 << 20);
      const [reply] = await exchange(s, pipeline([['AUTH', name, 'pw']]), 1);
      expect(String(reply)).toContain(
        `-NOPERM AUTH as database user "${name}" is refused while CLIENT TRACKING`,
      );
      let line: string | undefined;
      for (let i = 0; !line && i < 30; i++, await sleep(100)) {
        line = (await readFile(f.agent.auditPath, 'utf8'))
          .split('\n')
          .find((l) => l.includes('"session.denied"'));
      }
      expect(line!.length).toBeLessThan(60_000);
      const denied = JSON.parse(line!) as Record<string, string>;
      expect(denied.dbUser).toBe(`${name.slice(0, 4096)}…[${2 << 20} bytes sha256:${sha(name)}]`);
      const reason = `AUTH as database user "${name}" is refused while CLIENT TRACKING`;
      expect(denied.reason).toMatch(/…\[\d+ bytes sha256:[0-9a-f]{64}\]$/);
      expect(denied.reason!.startsWith(`${reason.slice(0, 4096)}…[`)).toBe(true);
    } finally {
      s.destroy();
    }
  });

  it('follow spec.audit.maxValueLength, at once for open sessions', async () => {
    const value = 'v'.repeat(999) + '"';
    const cut = `${'v'.repeat(300)}…[1000 bytes sha256:${sha(value)}]`;
    await f.agent.writeDocs(docsWith({ maxValueLength: 300 }));
    try {
      expect(await auditedOnceReloaded(value, cut)).toBe(cut); // on the session opened before
      expect(await auditedValue('s'.repeat(300))).toBe('s'.repeat(300));
    } finally {
      await f.agent.writeDocs(redisDocs(f.redis));
    }
    expect(await auditedOnceReloaded(value, value)).toBe(value);
  });
});
