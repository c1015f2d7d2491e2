/**
 * Required audit mode against a client that overflows the audit log within one read: a command whose
 * audit line alone is past twice the buffer (a pipe, the log of every Kubernetes agent, takes it only
 * as its reader reads), and in the same read the command it wants unrecorded. The log drops events
 * past twice the buffer; the command whose event was dropped must not run — the session ends instead.
 */
import { closeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestAgent } from '../../support/agent.js';
import { type Fixture as PgFixture, baseDocs, pgClient, startFixture } from '../postgres/fixture.js';
import { type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { fifoReader, readNow, replies, until } from './audit-support.js';

let f: RedisFixture;
let dir: string;

beforeAll(async () => {
  f = await startRedisFixture();
  dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-audit-overflow-'));
});

afterAll(async () => {
  await f?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const resp = (args: string[]) =>
  `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;

describe('audit mode required, one read past twice the buffer', () => {
  it('never runs a command whose event the log dropped: the session ends', async () => {
    const fifo = path.join(dir, 'overflow.fifo');
    const reader = fifoReader(fifo);
    try {
      const agent = await f.startAgent(redisDocs(f.redis), {
        audit: { path: fifo, bufferBytes: 64 * 1024, stallTimeout: '60s' },
      });
      const socket = await f.rawAt(agent.port, 'alice');
      const state = replies(socket);
      // ~300 KB of EXISTS arguments: one audit line over 2 × 64 KiB, then the SET in the same read.
      const big = resp(['EXISTS', ...Array.from({ length: 3000 }, (_, i) => `k${i}:${'x'.repeat(90)}`)]);
      socket.write(big + resp(['SET', 'overflow:unaudited', '1']));
      await until('the session answers or ends', () => state.closed || state.text.includes(':0'));
      await new Promise((r) => setTimeout(r, 500));
      const ran = (await f.redis.cli(['exists', 'overflow:unaudited'])).trim();
      let log = readNow(reader);
      await until('the log drained', () => {
        log += readNow(reader);
        return log.includes('"command":"exists"');
      });
      const auditedSet = log.includes('overflow:unaudited');
      // Either the SET was recorded, or it never reached the server.
      expect({ ran, auditedSet }).not.toEqual({ ran: '1', auditedSet: false });
      expect(ran).toBe('0');
      await until('the session ends', () => state.closed);
      expect(state.text).toMatch(/audit/);
      socket.destroy();
      readNow(reader);
      await agent.stop();
    } finally {
      closeSync(reader);
    }
  });
});

/** A simple Query message. */
const query = (sql: string) => {
  const text = Buffer.from(`${sql}\0`);
  const head = Buffer.alloc(5);
  head.write('Q');
  head.writeInt32BE(4 + text.length, 1);
  return Buffer.concat([head, text]);
};

describe('PostgreSQL, audit mode required, one read past twice the buffer', () => {
  let pgf: PgFixture;
  beforeAll(async () => {
    pgf = await startFixture();
  });
  afterAll(async () => {
    await pgf?.stop();
  });

  it('never runs a statement whose event the log dropped: the session ends', async () => {
    const fifo = path.join(dir, 'overflow-pg.fifo');
    const reader = fifoReader(fifo);
    try {
      // The Database shows statements whole up to 1 MB (its own spec.audit.maxValueLength).
      const docs = baseDocs(pgf.pg.port, pgf.pg.ca.certPem) as { kind: string; spec: object }[];
      const db = docs.find((d) => d.kind === 'Database')!;
      db.spec = { ...db.spec, audit: { maxValueLength: 1 << 20 } };
      const agent = await startTestAgent({
        database: 'orders-pg',
        docs,
        tls: pgf.agentTls,
        audit: { path: fifo, bufferBytes: 64 * 1024, stallTimeout: '60s' },
      });
      const c = pgClient({ ...pgf, agent }, pgf.people.alice, 'alice', 'orders');
      c.on('error', () => undefined);
      await c.connect();
      await new Promise((r) => setTimeout(r, 200));
      readNow(reader);
      const stream = (c as unknown as { connection: { stream: Socket } }).connection.stream;
      let closed = false;
      stream.on('close', () => (closed = true));
      // One statement whose line alone is ~300 KB, then the one to hide, in the same read.
      const filler = `select '${'x'.repeat(300_000)}'`;
      stream.write(Buffer.concat([query(filler), query('create table overflow_unaudited (x int)')]));
      let log = '';
      await until('the log took the filler', () => {
        log += readNow(reader);
        return log.includes('xxxxx\'"');
      });
      await new Promise((r) => setTimeout(r, 500));
      log += readNow(reader);
      const exists = await pgf.pg.admin(
        `select count(*) from pg_tables where tablename = 'overflow_unaudited'`,
        'orders',
      );
      const audited = log.includes('overflow_unaudited');
      expect({ ran: exists.trim(), audited }).not.toEqual({ ran: '1', audited: false });
      expect(exists.trim()).toBe('0');
      await until('the session ends', () => closed);
      readNow(reader);
      await agent.stop();
    } finally {
      closeSync(reader);
    }
  });
});
