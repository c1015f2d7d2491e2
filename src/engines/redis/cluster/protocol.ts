// What the cluster router needs to know about the protocol a session speaks. RESP2 and RESP3
// sessions never share a node connection (pool.ts keeps one pool per login and protocol): the same
// command answers in different shapes (HGETALL: flat array or map), so a reply is only ever relayed
// to a client that asked in the protocol its connection speaks. Frames are classified by their
// first bytes, without decoding, as on the RESP2 path (error frames: the codec's isErrorFrame).
import { NULL, type RespVersion, encodeCommand } from '../serializer.js';

/** Sent first on every RESP3 node connection, right after AUTH. */
export const HELLO_3 = encodeCommand(['HELLO', '3']);

const enum Byte {
  Push = 0x3e, // >
  Array = 0x2a, // *
}

/** RESP2's nil array. */
export const NULL_ARRAY = Buffer.from('*-1\r\n');

/** The null an absent aggregate is (EXEC aborted by WATCH): `*-1` in RESP2, `_` in RESP3. */
export function nullArray(p: RespVersion): Buffer {
  return p === 3 ? NULL : NULL_ARRAY;
}

/**
 * A pub/sub message frame for a client of protocol `p`. A message of bulk strings differs between the
 * protocols only in its first byte (`*3 message ch payload` / `>3 ...`); a subscription made in one
 * protocol keeps its connection when the session switches with HELLO, so its messages are re-tagged
 * (copied: the received bytes may still be queued in a socket write).
 */
export function messageFor(frame: Buffer, p: RespVersion): Buffer {
  const want = p === 3 ? Byte.Push : Byte.Array;
  if (frame[0] === want) return frame;
  const out = Buffer.from(frame);
  out[0] = want;
  return out;
}
