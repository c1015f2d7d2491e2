// Hostile clients against the agent's limits, PostgreSQL side: a real PostgreSQL 15 behind the real
// agent. The stranger has no certificate (and, on the agent that takes ServiceAccount tokens, is asked
// for a password it never sends properly); the insider has one. Neither may make the agent buffer
// what it sends or is sent, hold connections without bound, or sit in the handshake.
import { mkdtemp, rm } from 'node:fs/promises';
import { type Socket, connect as tcpConnect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agent/agent.js';
import { JsonLinesAudit } from '../../../src/agent/audit.js';
import { snapshotOf } from '../../../src/agent/config-file.js';
import { AgentState } from '../../../src/agent/state.js';
import { serverContextFromFiles } from '../../../src/agent/tls.js';
import { loadConfigFile } from '../../../src/api/config.js';
import { DrawbridgeError } from '../../../src/errors.js';
import { decodeErrorFields } from '../../../src/engines/postgres/decoders.js';
import { type ErrorFields } from '../../../src/engines/postgres/messages.js';
import { BACKEND_LIMITS, HandshakeBuffer } from '../../../src/engines/postgres/parser.js';
import { SSL_REQUEST, startupMessage } from '../../../src/engines/postgres/serializer.js';
import { createLogger } from '../../../src/log.js';
import { agentParts } from '../../../src/wiring.js';
import { type TestAgent, startTestAgent, writeAgentConfig } from '../../support/agent.js';
import { type Fixture, type Person, baseDocs, pgClient, startFixture } from '../postgres/fixture.js';
import { rawSession } from '../postgres/raw-client.js';
import {
  MB,
  eventually,
  limitCount,
  peakGrowth,
  received,
  streamUntilClosed,
  tcpClient,
  withLimits,
} from './limits-support.js';

const TIGHT = {
  maxConnections: 6,
  maxConnectionsPerIdentity: 2,
  authTimeout: '2s',
  maxRequestBytes: '1Mi',
};

let f: Fixture;
let tight: TestAgent;
/** An agent that takes ServiceAccount tokens as passwords (as in cluster); this one accepts none. */
let tokens: { agent: Agent; port: number; dir: string };

/** SSLRequest, 'S', TLS: the connection as it stands before the startup packet. */
async function tlsTo(port: number, who?: Person): Promise<TLSSocket> {
  const raw = tcpConnect({ host: '127.0.0.1', port });
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  raw.write(SSL_REQUEST);
  const answer = await new Promise<Buffer>((resolve) => raw.once('data', resolve));
  expect(answer.toString()).toBe('S');
  const tls = tlsConnect({
    socket: raw,
    ca: f.ca.certPem,
    servername: 'localhost',
    ...(who ? { cert: who.certPem, key: who.keyPem } : {}),
  });
  await new Promise<void>((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject));
  return tls;
}

/** The first ErrorResponse the agent sent before closing, and how long the connection lasted. */
async function errorAtClose(tls: TLSSocket, ms = 15_000): Promise<{ error?: ErrorFields; ms: number }> {
  const r = await received(tls, ms);
  expect(r.closed).toBe(true);
  const buf = new HandshakeBuffer();
  buf.push(Buffer.from(r.text, 'latin1'));
  for (let m = buf.message(BACKEND_LIMITS); m; m = buf.message(BACKEND_LIMITS)) {
    if (m.code === 0x45) return { error: decodeErrorFields(m.body), ms: r.ms };
  }
  return { ms: r.ms };
}

async function connectError(agentPort: number, who: Person, dbUser = 'alice'): Promise<unknown> {
  const c = pgClient({ ...f, agent: { ...f.agent, port: agentPort } as TestAgent }, who, dbUser, 'orders');
  c.on('error', () => undefined);
  try {
    await c.connect();
    return c;
  } catch (err) {
    return err;
  }
}

beforeAll(async () => {
  f = await startFixture();
  const docs = withLimits(baseDocs(f.pg.port, f.pg.ca.certPem), TIGHT);
  tight = await startTestAgent({ database: 'orders-pg', docs, tls: f.agentTls });
  const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-tokens-'));
  const files = await writeAgentConfig(dir, { database: 'orders-pg', docs, tls: f.agentTls });
  const bundle = await loadConfigFile(files.configPath);
  const log = createLogger('token-agent', process.env.DRAWBRIDGE_LOG_LEVEL ?? 'warn');
  const agent = await Agent.create({
    parts: agentParts,
    state: new AgentState(snapshotOf(bundle, files.configPath)),
    serverTls: serverContextFromFiles(bundle.agent!.spec.tls),
    audit: new JsonLinesAudit(files.auditPath, log),
    log,
    limits: bundle.agent!.spec.limits,
    tokenVerifier: {
      verify: () => Promise.reject(new DrawbridgeError('AUTHN_FAILED', 'no token is valid here')),
    },
  });
  tokens = { agent, port: (await agent.listen('127.0.0.1', 0)).port, dir };
});

afterAll(async () => {
  await tokens?.agent.stop(100);
  if (tokens) await rm(tokens.dir, { recursive: true, force: true });
  await tight?.stop();
  await f?.stop();
});

describe('before authentication', () => {
  it('a startup packet over PostgreSQL’s 10000 bytes ends the connection at its length; nothing is buffered', async () => {
    const tls = await tlsTo(f.agent.port);
    const closing = errorAtClose(tls);
    const { result: sent, buffers } = await peakGrowth(() =>
      streamUntilClosed(tls, Buffer.from([0x00, 0x10, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00]), 100 * MB),
    );
    const { error } = await closing;
    expect(error).toMatchObject({ code: '08P01', message: 'invalid startup packet length 1048576' });
    expect(sent).toBeLessThan(32 * MB);
    expect(buffers).toBeLessThan(16 * MB);
  });

  it('a password message over 64 KB (the token a stranger is asked for) ends the connection at its header', async () => {
    const tls = await tlsTo(tokens.port);
    tls.write(
      startupMessage([
        ['user', 'alice'],
        ['database', 'orders'],
      ]),
    );
    // AuthenticationCleartextPassword: the agent asks for the ServiceAccount token.
    const ask = await new Promise<Buffer>((resolve) => tls.once('data', resolve));
    expect([...ask]).toEqual([0x52, 0, 0, 0, 8, 0, 0, 0, 3]);
    const closing = errorAtClose(tls);
    const { result: sent, buffers } = await peakGrowth(() =>
      streamUntilClosed(tls, Buffer.from([0x70, 0x06, 0x40, 0x00, 0x00]), 100 * MB),
    );
    const { error } = await closing;
    expect(error).toMatchObject({ code: '08P01' });
    expect(error?.message).toContain('exceeds the limit of 65535 bytes');
    expect(sent).toBeLessThan(32 * MB);
    expect(buffers).toBeLessThan(16 * MB);
  });

  it('GSSENCRequest is answered once, as by PostgreSQL: a stream of them ends the connection at the second', async () => {
    // Each answered 'N' would wait in the agent's socket until the auth timeout: 8 bytes in, one write
    // queued, as long as a stranger keeps sending.
    const s = await tcpClient(f.agent.port);
    const reply = received(s);
    const gssenc = Buffer.from([0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30]);
    const sent = await streamUntilClosed(s, gssenc, 64 * MB, Buffer.concat(Array(8192).fill(gssenc)));
    const { text, closed } = await reply;
    expect(closed).toBe(true);
    expect(text[0]).toBe('N');
    const buf = new HandshakeBuffer();
    buf.push(Buffer.from(text.slice(1), 'latin1'));
    const m = buf.message(BACKEND_LIMITS);
    expect(m?.code).toBe(0x45);
    expect(decodeErrorFields(m!.body)).toMatchObject({
      code: '08P01',
      message: 'the client sent GSSENCRequest twice; the agent does not offer GSSAPI encryption',
    });
    expect(sent).toBeLessThan(32 * MB);
  });

  it('a stranger who never answers the password request gets "canceling authentication due to timeout"', async () => {
    const tls = await tlsTo(tokens.port);
    tls.write(
      startupMessage([
        ['user', 'alice'],
        ['database', 'orders'],
      ]),
    );
    const { error, ms } = await errorAtClose(tls);
    expect(error).toMatchObject({ code: '57014' });
    expect(error?.message).toContain(
      'canceling authentication due to timeout: not authenticated within 2000 ms',
    );
    expect(ms).toBeGreaterThan(1500);
    expect(ms).toBeLessThan(8000);
    const counted = await tokens.agent.metrics.limitExceeded.get();
    expect(counted.values.find((v) => v.labels.limit === 'authTimeout')?.value).toBeGreaterThanOrEqual(1);
  });

  it('a connection that sends nothing at all, or stops inside TLS, is closed at the deadline', async () => {
    const silent = await tcpClient(tight.port);
    const inTls = await tlsTo(tight.port, f.people.alice);
    const [a, b] = await Promise.all([received(silent), received(inTls)]);
    expect(a.closed && b.closed).toBe(true);
    expect(Math.max(a.ms, b.ms)).toBeLessThan(8000);
  });
});

describe('after login', () => {
  it('a message over maxRequestBytes ends the session with a FATAL naming the limit', async () => {
    const s = await rawSession({ ...f, agent: tight }, f.people.alice, 'alice', 'orders');
    const query = (sql: string) => {
      const body = Buffer.from(sql + '\0');
      const head = Buffer.alloc(5);
      head[0] = 0x51;
      head.writeInt32BE(body.length + 4, 1);
      return Buffer.concat([head, body]);
    };
    s.tls.write(query(`select length('${'x'.repeat(900 * 1024)}')`));
    let row = '';
    for (let m = await s.next(); m && m.code !== 0x5a; m = await s.next()) {
      if (m.code === 0x44) row = m.body.subarray(6).toString();
    }
    expect(row).toBe(String(900 * 1024));
    s.tls.write(query(`select '${'x'.repeat(2 * MB)}'`));
    const error = await s.errorUntilClose();
    expect(error).toMatchObject({ code: '08P01' });
    expect(error?.message).toContain(`exceeds the limit of ${MB} bytes`);
    expect(error?.hint).toContain('limits.maxRequestBytes');
    expect(await limitCount(tight, 'maxRequestBytes')).toBeGreaterThanOrEqual(1);
  });

  it('65,536 messages the server has not answered end the session, counted as limit unansweredMessages', async () => {
    const s = await rawSession({ ...f, agent: tight }, f.people.alice, 'alice', 'orders');
    const message = (code: string, body: Buffer) => {
      const head = Buffer.alloc(5);
      head.write(code, 0, 'latin1');
      head.writeInt32BE(body.length + 4, 1);
      return Buffer.concat([head, body]);
    };
    const parse = (sql: string) => message('P', Buffer.from(`\0${sql}\0\0\0`, 'latin1'));
    // The server sleeps in the first Execute, reading nothing: the Parses after it wait unanswered.
    s.tls.write(parse('select pg_sleep(5)'));
    s.tls.write(message('B', Buffer.from('\0\0\0\0\0\0\0\0', 'latin1')));
    s.tls.write(message('E', Buffer.from('\0\0\0\0\0', 'latin1')));
    const before = await limitCount(tight, 'unansweredMessages');
    s.tls.write(Buffer.concat(Array.from({ length: 70_000 }, () => parse('select 1'))));
    const error = await s.errorUntilClose();
    expect(error).toMatchObject({ code: '08P01' });
    expect(error?.message).toContain('more than 65536 messages await an answer');
    expect(await limitCount(tight, 'unansweredMessages')).toBe(before + 1);
  });

  it('a client that does not read a 64 MB result holds the agent to its socket buffers', async () => {
    const s = await rawSession(f, f.people.alice, 'alice', 'orders');
    s.tls.pause();
    const sql = Buffer.from("select repeat('x', 1048576) from generate_series(1, 64)\0");
    const head = Buffer.alloc(5);
    head[0] = 0x51;
    head.writeInt32BE(sql.length + 4, 1);
    const { buffers } = await peakGrowth(async () => {
      s.tls.write(Buffer.concat([head, sql]));
      await new Promise((r) => setTimeout(r, 3000));
    });
    expect(buffers).toBeLessThan(16 * MB);
    // Once it reads, every row arrives.
    s.tls.resume();
    let rows = 0;
    for (let m = await s.next(); m && m.code !== 0x5a; m = await s.next()) if (m.code === 0x44) rows++;
    expect(rows).toBe(64);
    s.tls.destroy();
  });

  it('a client that stops reading inside a 256 MB row, then sends a malformed message, still holds the agent to its socket buffers', async () => {
    // The agent ends the session, but first relays the rest of the row in flight so its FATAL can be
    // parsed: that rest must wait for the client too, not pile up in the agent until the force close.
    const s = await rawSession(f, f.people.alice, 'alice', 'orders');
    const sql = Buffer.from("select repeat('x', 256 * 1048576)\0");
    const head = Buffer.alloc(5);
    head[0] = 0x51;
    head.writeInt32BE(sql.length + 4, 1);
    const rowStarted = new Promise((r) => s.tls.once('data', r));
    s.tls.write(Buffer.concat([head, sql]));
    await rowStarted;
    s.tls.pause();
    await new Promise((r) => setTimeout(r, 1000)); // the agent stops reading the server
    const { buffers } = await peakGrowth(async () => {
      s.tls.write(Buffer.from([0, 0, 0, 0, 4])); // no such message type
      await new Promise((r) => setTimeout(r, 3000)); // past the agent's force close (2 s)
    });
    s.tls.destroy();
    expect(buffers).toBeLessThan(16 * MB);
  }, 60_000);
});

describe('connection limits', () => {
  it('maxConnectionsPerIdentity: a third connection is refused with SQLSTATE 53300 naming the limit', async () => {
    const [c1, c2] = [
      await connectError(tight.port, f.people.alice),
      await connectError(tight.port, f.people.alice),
    ];
    const third = await connectError(tight.port, f.people.alice);
    expect(third).toMatchObject({ code: '53300' });
    expect(String((third as Error).message)).toContain(
      '"alice" already has 2 connections to this agent (limits.maxConnectionsPerIdentity)',
    );
    // Another person is not affected; a slot comes back when a session ends.
    const dave = await connectError(tight.port, f.people.dave);
    await (c1 as { end(): Promise<void> }).end();
    await eventually(async () => {
      const c = await connectError(tight.port, f.people.alice);
      if (c instanceof Error) return false;
      await (c as { end(): Promise<void> }).end();
      return true;
    }, 'a slot for alice');
    for (const c of [c2, dave]) await (c as { end(): Promise<void> }).end();
  });

  it('maxConnections: strangers holding every slot are closed oldest first for each newcomer', async () => {
    const open = async () =>
      (await tight.running.agent.metrics.connections.get()).values.reduce((n, v) => n + v.value, 0);
    const closedStrangers = async () =>
      (await tight.running.agent.metrics.strangersClosed.get()).values.reduce((n, v) => n + v.value, 0);
    await eventually(async () => (await open()) === 0, 'earlier connections to close');
    const before = await closedStrangers();
    // A stranger without a certificate holds every slot (reopening them at each authTimeout would keep
    // them): people with a certificate still get in, each in the slot of the oldest stranger.
    const idle: Socket[] = [];
    for (let i = 0; i < TIGHT.maxConnections; i++) idle.push(await tcpClient(tight.port));
    const gone = idle.map((s) => new Promise<void>((resolve) => s.once('close', () => resolve())));
    await eventually(async () => (await open()) === idle.length, 'the agent to count them');
    const sessions = [];
    for (const who of [f.people.dave, f.people.alice, f.people.alice, f.people.dave]) {
      const c = await connectError(tight.port, who);
      expect(c).not.toBeInstanceOf(Error);
      sessions.push(c as { end(): Promise<void> });
    }
    await Promise.all(gone.slice(0, 4)); // the four oldest, in order
    expect(idle.slice(4).every((s) => !s.destroyed)).toBe(true);
    expect((await closedStrangers()) - before).toBe(4);
    // Authenticated sessions keep their slots: with every slot held by one, a newcomer is refused.
    idle.forEach((s) => s.destroy());
    await eventually(async () => (await open()) === 4, 'the strangers to go');
    const more = [await tcpClient(tight.port), await tcpClient(tight.port)];
    await eventually(async () => (await open()) === 6, 'two more strangers');
    const third = await connectError(tight.port, f.people.dave); // takes a stranger's slot, then its own limit
    expect(third).toMatchObject({ code: '53300' });
    expect(String((third as Error).message)).toContain('(limits.maxConnectionsPerIdentity)');
    for (const c of sessions) await c.end();
    more.forEach((s) => s.destroy());
    await eventually(async () => (await open()) === 0, 'everything to close');
  });

  it('maxConnections: with every slot held by authenticated sessions a client gets "max number of clients reached" (53300)', async () => {
    const docs = withLimits(baseDocs(f.pg.port, f.pg.ca.certPem), { ...TIGHT, maxConnections: 4 });
    const small = await startTestAgent({ database: 'orders-pg', docs, tls: f.agentTls });
    try {
      const sessions = [];
      for (const who of [f.people.dave, f.people.alice, f.people.alice, f.people.dave]) {
        const c = await connectError(small.port, who);
        expect(c).not.toBeInstanceOf(Error);
        sessions.push(c as { end(): Promise<void> });
      }
      const refused = await connectError(small.port, f.people.mallory);
      expect(refused).toMatchObject({ code: '53300' });
      expect(String((refused as Error).message)).toMatch(
        /^max number of clients reached: this agent holds 4/,
      );
      await sessions[0]!.end();
      await eventually(async () => {
        const c = await connectError(small.port, f.people.dave);
        if (c instanceof Error) return false;
        sessions[0] = c as { end(): Promise<void> };
        return true;
      }, 'a slot once a session ends');
      for (const c of sessions) await c.end();
    } finally {
      await small.stop();
    }
  });
});
