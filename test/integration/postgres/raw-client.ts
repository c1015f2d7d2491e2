// A bare-bones PostgreSQL client for what real drivers never do: send malformed or oversized frames,
// or a CancelRequest inside TLS. It logs in through the agent like psql would, then exposes the socket.
import { connect as tcpConnect } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { decodeBackendKey, decodeErrorFields } from '../../../src/engines/postgres/decoders.js';
import { type ErrorFields, type Frame, StartupCode } from '../../../src/engines/postgres/messages.js';
import { BACKEND_LIMITS, HandshakeBuffer } from '../../../src/engines/postgres/parser.js';
import { SSL_REQUEST, cancelRequest, startupMessage } from '../../../src/engines/postgres/serializer.js';
import type { Fixture, Person } from './fixture.js';

export interface RawSession {
  tls: TLSSocket;
  processId: number;
  secretKey: number;
  /** The next message from the agent, or undefined when the connection has closed. */
  next(): Promise<Frame | undefined>;
  /** Reads until the connection closes; returns the first ErrorResponse seen. */
  errorUntilClose(): Promise<ErrorFields | undefined>;
}

async function tlsTo(f: Fixture, who: Person): Promise<TLSSocket> {
  const raw = tcpConnect({ host: '127.0.0.1', port: f.agent.port });
  await new Promise<void>((resolve, reject) => raw.once('connect', resolve).once('error', reject));
  raw.write(SSL_REQUEST);
  const answer = await new Promise<Buffer>((resolve) => raw.once('data', resolve));
  if (answer.toString() !== 'S') throw new Error(`agent answered ${answer.toString()} to SSLRequest`);
  const tls = tlsConnect({
    socket: raw,
    ca: f.ca.certPem,
    cert: who.certPem,
    key: who.keyPem,
    servername: 'localhost',
  });
  await new Promise<void>((resolve, reject) => tls.once('secureConnect', resolve).once('error', reject));
  return tls;
}

export async function rawSession(
  f: Fixture,
  who: Person,
  dbUser: string,
  dbName: string,
  /** More startup parameters (options, application_name, ...). */
  extra: Record<string, string> = {},
): Promise<RawSession> {
  const tls = await tlsTo(f, who);
  const buffer = new HandshakeBuffer();
  const waiting: (() => void)[] = [];
  let closed = false;
  tls.on('data', (chunk: Buffer) => {
    buffer.push(chunk);
    waiting.splice(0).forEach((w) => w());
  });
  tls.on('close', () => {
    closed = true;
    waiting.splice(0).forEach((w) => w());
  });
  tls.on('error', () => undefined);
  const next = async (): Promise<Frame | undefined> => {
    for (;;) {
      const frame = buffer.message(BACKEND_LIMITS);
      if (frame) return frame;
      if (closed) return undefined;
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
  };
  tls.write(startupMessage([['user', dbUser], ['database', dbName], ...Object.entries(extra)]));
  let key = { processId: 0, secretKey: 0 };
  for (let m = await next(); m?.code !== 0x5a; m = await next()) {
    if (!m) throw new Error('connection closed during startup');
    if (m.code === 0x45) throw new Error(`startup failed: ${decodeErrorFields(m.body).message}`);
    if (m.code === 0x4b) key = decodeBackendKey(m.body);
  }
  return {
    tls,
    ...key,
    next,
    async errorUntilClose() {
      let error: ErrorFields | undefined;
      for (let m = await next(); m; m = await next()) {
        if (m.code === 0x45 && !error) error = decodeErrorFields(m.body);
      }
      return error;
    },
  };
}

/** Sends a CancelRequest inside TLS (what libpq 17 does), on a new connection. */
export async function cancelOverTls(
  f: Fixture,
  who: Person,
  processId: number,
  secretKey: number,
): Promise<void> {
  const tls = await tlsTo(f, who);
  tls.on('error', () => undefined);
  await new Promise<void>((resolve) => {
    tls.once('close', () => resolve());
    tls.end(cancelRequest(processId, secretKey));
    tls.resume();
  });
}

/** Sends a plaintext CancelRequest (what psql 15 and pg do), on a new connection to `port`. */
export async function cancelPlain(
  port: number,
  processId: number,
  secretKey: number,
  code = StartupCode.CancelRequest,
): Promise<void> {
  const raw = tcpConnect({ host: '127.0.0.1', port });
  raw.on('error', () => undefined);
  await new Promise<void>((resolve) => {
    raw.once('close', () => resolve());
    raw.end(cancelRequest(processId, secretKey, code));
    raw.resume();
  });
}
