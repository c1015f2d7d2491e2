// Every byte through the relay reaches its own session intact: many sessions at once, each sending
// its own values (small ones, and large ones spanning many reads both ways) pipelined in random pieces,
// and a client that stops reading while a large result streams (the agent pauses the database, then
// resumes it; PostgreSQL itself is seen waiting to write meanwhile). The relay reads through src/agent/direct-read.ts, whose reads land in shared slabs:
// a byte read for one session showing up in another's would be a leak across sessions.
import { createHash, randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { decodeErrorFields } from '../../../src/engines/postgres/decoders.js';
import { type Fixture, startFixture } from './fixture.js';
import { type RawSession, rawSession } from './raw-client.js';

let f: Fixture;
beforeAll(async () => {
  f = await startFixture();
});
afterAll(async () => {
  await f?.stop();
});

function query(sql: string): Buffer {
  const text = Buffer.from(`${sql}\0`);
  const head = Buffer.alloc(5);
  head[0] = 0x51; // 'Q'
  head.writeInt32BE(4 + text.length, 1);
  return Buffer.concat([head, text]);
}

/** Writes `data` in random pieces (1 B to 9 KB), now and then yielding to the event loop. */
async function writeInPieces(s: RawSession, data: Buffer): Promise<void> {
  for (let at = 0; at < data.length;) {
    const n = Math.min(data.length - at, 1 + Math.floor(Math.random() * 9_000));
    if (!s.tls.write(data.subarray(at, (at += n)))) await new Promise((r) => s.tls.once('drain', r));
    if (Math.random() < 0.3) await new Promise((r) => setImmediate(r));
  }
}

/** The single text column of each DataRow until `rows` ReadyForQuery messages have come. */
async function values(s: RawSession, readyCount: number): Promise<string[]> {
  const out: string[] = [];
  for (let ready = 0; ready < readyCount;) {
    const m = await s.next();
    if (!m) throw new Error('the session closed');
    if (m.code === 0x45) throw new Error(decodeErrorFields(m.body).message);
    if (m.code === 0x44) out.push(m.body.toString('utf8', 6, 6 + m.body.readInt32BE(2)));
    if (m.code === 0x5a) ready++;
  }
  return out;
}

it('relays 12 sessions at once, each its own values (up to 150 KB), pipelined in random pieces', async () => {
  const sessions = await Promise.all(
    Array.from({ length: 12 }, () => rawSession(f, f.people.alice, 'alice', 'orders')),
  );
  await Promise.all(
    sessions.map(async (s, i) => {
      const sent = Array.from({ length: 25 }, (_, q) => {
        const size = Math.random() < 0.3 ? 20_000 + Math.floor(Math.random() * 130_000) : 1 + q * 7;
        return `s${i}q${q}-${randomBytes(size).toString('hex').slice(0, size)}`;
      });
      await writeInPieces(s, Buffer.concat(sent.map((v) => query(`select '${v}'`))));
      expect(await values(s, sent.length)).toEqual(sent);
      s.tls.end();
    }),
  );
});

const ROWS = 2_000;
const BIG_RESULT = query(`select repeat(md5(g::text), 200) from generate_series(1, ${ROWS}) g`);
const row = (i: number) =>
  createHash('md5')
    .update(`${i + 1}`)
    .digest('hex')
    .repeat(200);

it('streams a 12 MB result to a client that stops reading for a while, every row intact', async () => {
  const s = await rawSession(f, f.people.alice, 'alice', 'orders');
  s.tls.pause();
  s.tls.write(BIG_RESULT);
  await sleep(700); // the agent's write to the client fills: it pauses the database socket
  s.tls.resume();
  const got = await values(s, 1);
  expect(got.length).toBe(ROWS);
  got.forEach((v, i) => expect(v).toBe(row(i)));
  s.tls.end();
});

it('holds the database back while the client reads nothing: PostgreSQL waits to write', async () => {
  const s = await rawSession(f, f.people.alice, 'alice', 'orders');
  const rows = 10_000; // 64 MB: far more than the sockets' buffers on the way hold
  s.tls.pause();
  s.tls.write(query(`select repeat(md5(g::text), 200) from generate_series(1, ${rows}) g`));
  // Relayed without backpressure, the agent would take all of it within this time, and the server
  // would be done; paused, the agent stops reading the server, whose send blocks.
  await sleep(3_000);
  const activity = await f.pg.admin(
    `select state, wait_event from pg_stat_activity where pid = ${s.processId}`,
  );
  expect(activity).toContain('active|ClientWrite');
  s.tls.resume();
  const got = await values(s, 1);
  expect(got.length).toBe(rows);
  got.forEach((v, i) => expect(v).toBe(row(i)));
  s.tls.end();
});
