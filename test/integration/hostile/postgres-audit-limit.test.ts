// Hostile: a Bind of many values that need escaping must not make a gigantic audit line. A control
// character is six bytes once JSON-escaped (\u0001), so a Bind of 60,000 parameters of 2,000 of them
// (120 MB, within maxRequestBytes) written out whole would be a line of ~720 MB and a buffer of three
// times that. The relay's scanner keeps at most 1 MiB of a message for the audit (its capture limit):
// a longer Bind is audited as cut (`parameters: null`, `truncated`, `messageBytes`), so the longest
// line one Bind or FunctionCall can make is about six times 1 MiB. Raw wire messages through the real
// agent against the real PostgreSQL 15, the lines read back from the real audit file.
import { readFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fixture, startFixture } from '../postgres/fixture.js';
import { fe } from '../../unit/postgres/factory.js';
import { exchange, queries, withSession } from './postgres-audit-support.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

/** The bytes of the audit line of `sessionId`'s `query` event. */
async function lineOf(sessionId: string): Promise<number> {
  const text = await readFile(f.agent.auditPath, 'utf8');
  const line = text.split('\n').find((l) => l.includes(sessionId) && l.includes('"type":"query"'));
  return Buffer.byteLength(line!);
}

/** Binds `values` to a one-parameter statement (the server refuses the count, after the audit). */
async function bindAudited(values: Buffer[]) {
  return withSession(f, async (s) => {
    const errors = await exchange(s, [
      fe.parse('', 'SELECT $1::text'),
      fe.bind('', '', [], values),
      fe.execute(''),
      fe.sync(),
    ]);
    expect(errors).toEqual([
      `bind message supplies ${values.length} parameters, but prepared statement "" requires 1`,
    ]);
    const [event] = await queries(f, s, 1);
    expect(await exchange(s, [fe.query('SELECT 1')])).toEqual([]); // the session goes on
    return { event: event!, line: await lineOf(s.sessionId) };
  });
}

describe('Binds of control characters', () => {
  it('of 1 MiB (the capture limit): every value shown, a line of 5 to 7 MiB', async () => {
    const values = Array.from({ length: 500 }, (_, i) => Buffer.alloc(2090, 1 + (i % 30)));
    const { event, line } = await bindAudited(values);
    expect(event.parameters).toEqual(values.map((v) => v.toString('latin1')));
    expect(line).toBeGreaterThan(5_000_000); // most of the 1 MiB six bytes a byte
    expect(line).toBeLessThan(7 << 20);
  });

  it('of 120 MB: audited as cut, a short line', async () => {
    const values = Array.from({ length: 60_000 }, () => Buffer.alloc(2000, 1));
    const { event, line } = await bindAudited(values);
    expect(event).toMatchObject({ query: 'SELECT $1::text', parameters: null, truncated: true });
    expect(event.messageBytes).toBe(60_000 * 2004 + 8);
    expect(line).toBeLessThan(1000);
  }, 60_000);
});
