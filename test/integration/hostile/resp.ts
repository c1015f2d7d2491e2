// Raw RESP for the hostile suites: an attacker writes exact bytes (pipelines, inline commands, odd
// framing) and reads the replies back decoded, without a client library smoothing anything over.
import type { TLSSocket } from 'node:tls';
import {
  ReplyFramer,
  RespBigNumber,
  RespDouble,
  RespError,
  RespMap,
  RespPush,
  RespSet,
  type RespValue,
  RespVerbatim,
  decodeReply,
} from '../../../src/engines/redis/reply-parser.js';
import { encodeCommand } from '../../../src/engines/redis/serializer.js';

/**
 * A reply as text: `+OK` → 'OK', `-ERR x` → '-ERR x', bulks as UTF-8, arrays as arrays; RESP3 maps as
 * flat key/value arrays, sets as arrays, pushes as `{ push: [...] }`, doubles as numbers, big numbers
 * and verbatim strings as strings.
 */
export type Shown = string | number | boolean | null | Shown[] | { push: Shown[] };

export function show(v: RespValue): Shown {
  if (v instanceof RespError) return `-${v.message}`;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  if (Array.isArray(v)) return v.map(show);
  if (v instanceof RespMap) return v.entries.flat().map(show);
  if (v instanceof RespSet) return v.items.map(show);
  if (v instanceof RespPush) return { push: v.items.map(show) };
  if (v instanceof RespDouble) return v.value;
  if (v instanceof RespBigNumber) return String(v.value);
  if (v instanceof RespVerbatim) return v.text.toString('utf8');
  return v;
}

/** `commands` as one write of RESP arrays (a pipeline). */
export function pipeline(commands: readonly (readonly string[])[]): Buffer {
  return Buffer.concat(commands.map((c) => encodeCommand(c)));
}

/**
 * Writes `bytes` and resolves with the next `count` replies; rejects if the connection closes first,
 * with the replies so far in the message.
 */
export function exchange(socket: TLSSocket, bytes: Buffer | string, count: number): Promise<Shown[]> {
  return new Promise((resolve, reject) => {
    const got: Shown[] = [];
    const framer = new ReplyFramer((frame) => {
      got.push(show(decodeReply(frame)));
      if (got.length === count) finish();
    });
    const onData = (chunk: Buffer) => framer.feed(chunk);
    const onClose = () => {
      cleanup();
      reject(new Error(`connection closed after ${JSON.stringify(got)}`));
    };
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('close', onClose);
    };
    const finish = () => {
      cleanup();
      resolve(got);
    };
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.write(bytes);
  });
}

/** Resolves with what arrives until the agent closes the connection (at most `ms`). */
export function untilClosed(socket: TLSSocket, ms = 5000): Promise<{ replies: Shown[]; closed: boolean }> {
  return new Promise((resolve) => {
    const replies: Shown[] = [];
    const framer = new ReplyFramer((frame) => replies.push(show(decodeReply(frame))));
    socket.on('data', (chunk: Buffer) => framer.feed(chunk));
    const timer = setTimeout(() => resolve({ replies, closed: false }), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve({ replies, closed: true });
    });
  });
}
