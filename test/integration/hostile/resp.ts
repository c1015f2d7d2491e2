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

/**
 * Every frame the agent sends on a connection, in arrival order and as raw text (latin1): replies and
 * RESP3 pushes alike, so a test sees exactly which came when and of which RESP type.
 */
export class FrameReader {
  private readonly frames: string[] = [];
  private wake: (() => void) | undefined;
  private closed = false;

  constructor(socket: TLSSocket) {
    const framer = new ReplyFramer((frame) => {
      this.frames.push(frame.toString('latin1'));
      this.wake?.();
    });
    socket.on('data', (chunk: Buffer) => framer.feed(chunk));
    socket.once('close', () => {
      this.closed = true;
      this.wake?.();
    });
  }

  /** The next `count` frames; rejects when the connection closes or `ms` pass first. */
  async next(count = 1, ms = 5000): Promise<string[]> {
    const deadline = Date.now() + ms;
    while (this.frames.length < count) {
      if (this.closed) throw new Error(`connection closed; frames so far: ${JSON.stringify(this.frames)}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`no frame within ${ms} ms; frames so far: ${JSON.stringify(this.frames)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return this.frames.splice(0, count);
  }
}
