// Reads a relayed socket through Node's user-buffer path (what `net.connect({ onread })` uses) instead
// of Readable's 'data' events: per read, Readable's push, its buffer bookkeeping, `maybeReadMore`'s
// `process.nextTick` and a fresh ArrayBuffer are skipped: Node hands each read straight to the
// callback. Node honours `onread` only for sockets it creates itself, so this sets the same fields
// (found by their symbols' descriptions) on sockets the agent wraps; where they are not there (another
// Node), and on plain TCP sockets, the socket is read through 'data' as before. Used by PostgreSQL's
// relay (~0.9 of the CPU per `pgbench -S` transaction); Redis's measured no gain.
//
// Safety: nothing handed out is ever written again. Reads land in a 16 KiB region of a shared slab,
// each read just past the previous one (a bump allocator, as Node's own Buffer pool), and a socket gets
// a new region when less than 4 KiB of its own is left. A chunk may therefore be kept past the callback
// (a partial frame, a write Writable or libuv still holds, AuditHold's unshift) exactly as a 'data'
// chunk may: no session can ever see bytes read for another. Idle sockets each hold at most their
// region's untouched rest (no buffer of their own). Node reads into a socket's region again only after
// its callback has returned: TLS reads from JavaScript only on an empty write or renegotiate() to that
// socket, which the relay never makes.
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';

const SLAB_BYTES = 128 * 1024;
/** A TLS record's plaintext at most: one SSL_read is handed over whole. */
const REGION_BYTES = 16 * 1024;
/** Below this much left of its region, a socket's next read gets a new one. */
const MIN_REGION_BYTES = 4 * 1024;

interface NodeInternals {
  kBuffer: symbol;
  kBufferCb: symbol;
  kBufferGen: symbol;
}

type Internal = Socket &
  Record<symbol, unknown> & { _handle: { useUserBuffer?: (buf: Uint8Array) => void } | null };

let internals: NodeInternals | null | undefined;
let slab = Buffer.alloc(0);
let slabUsed = 0;

/** Node's fields for a user read buffer, found on a socket's own symbols; null when absent. */
function internalsOf(socket: Socket): NodeInternals | null {
  if (internals !== undefined) return internals;
  const symbols = Object.getOwnPropertySymbols(socket);
  const find = (name: string) => symbols.find((s) => s.description === name);
  const [kBuffer, kBufferCb, kBufferGen] = [find('kBuffer'), find('kBufferCb'), find('kBufferGen')];
  internals = kBuffer && kBufferCb && kBufferGen ? { kBuffer, kBufferCb, kBufferGen } : null;
  return internals;
}

/** A fresh region no chunk handed out overlaps. */
function region(): Buffer {
  if (slabUsed + REGION_BYTES > slab.length) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    slabUsed = 0;
  }
  slabUsed += REGION_BYTES;
  return slab.subarray(slabUsed - REGION_BYTES, slabUsed);
}

/**
 * Calls `onBytes` with each chunk `socket` reads, as `socket.on('data', onBytes)` does (paused, the
 * socket keeps what it reads for 'data' on resume, in order). Returns whether the direct path is in
 * use. Call it once per socket, before anything else reads it (the agent's relay: at session start).
 */
export function readDirect(socket: Socket, onBytes: (chunk: Buffer) => void): boolean {
  // Chunks read while paused, and anything Readable holds (read before this, or unshifted), come as
  // 'data' once the socket flows again.
  socket.on('data', onBytes);
  const s = socket as Internal;
  const k = internalsOf(socket);
  const handle = s._handle;
  // TLS sockets only: a plain one would read 16 KiB per read(2), not libuv's 64 KiB.
  if (!(socket as TLSSocket).encrypted || !k || !handle || typeof handle.useUserBuffer !== 'function')
    return false;
  if (s[k.kBuffer]) return false;
  let current = region();
  let used = 0;
  // false stops reading (Node's readStop), as a full Readable does.
  s[k.kBufferCb] = (n: number, buf: Buffer): boolean => {
    used = n;
    const chunk = buf.subarray(0, n);
    // Paused (Readable may still read up to its highWaterMark) or with chunks to emit first: kept in order.
    if (socket.isPaused() || socket.readableLength > 0) return socket.push(chunk);
    try {
      onBytes(chunk);
    } catch (err) {
      // Thrown past this, Node would not ask for the next buffer and would read over this chunk.
      socket.destroy(err as Error);
    }
    return true;
  };
  // Called after each read: where the next one goes (never over a byte handed out).
  s[k.kBufferGen] = (): Buffer => {
    current = current.length - used >= MIN_REGION_BYTES ? current.subarray(used) : region();
    used = 0;
    return current;
  };
  s[k.kBuffer] = current;
  handle.useUserBuffer(current);
  return true;
}
