// Redis Cluster's key → slot mapping (cluster.c keyHashSlot): CRC16/XMODEM of the hash tag, mod 16384.
// The tag is what lies between the first '{' and the first '}' after it; with no such pair, or an
// empty one ("a{}b}"), the whole key is hashed. Our own because cluster-key-slot gets the empty-tag
// case wrong: it keeps looking for a later '}' and hashes "a{}b}" as if its tag were "b".
const OPEN = 0x7b; // '{'
const CLOSE = 0x7d; // '}'
const SLOT_MASK = 0x3fff;

/** CRC16/XMODEM (poly 0x1021, init 0), one entry per byte value. */
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    table[byte] = crc & 0xffff;
  }
  return table;
})();

function crc16(key: Buffer, start: number, end: number): number {
  let crc = 0;
  for (let i = start; i < end; i++) crc = ((crc << 8) & 0xffff) ^ CRC16_TABLE[((crc >> 8) ^ key[i]!) & 0xff]!;
  return crc;
}

/** Redis's key → slot mapping, hash tags included (`{user1}:a` and `{user1}:b` share a slot). */
export function keySlot(key: Buffer): number {
  return keySlotIn(key, 0, key.length);
}

/**
 * keySlot of the key `buf[start, end)`, read in place (a parsed command's argument span). The tag is
 * looked for in a loop, not with indexOf: keys are short, and a native call costs more than the scan.
 */
export function keySlotIn(buf: Buffer, start: number, end: number): number {
  let open = start;
  while (open < end && buf[open] !== OPEN) open++;
  let close = open + 1;
  while (close < end && buf[close] !== CLOSE) close++;
  if (close > open + 1 && close < end) return crc16(buf, open + 1, close) & SLOT_MASK;
  return crc16(buf, start, end) & SLOT_MASK;
}
