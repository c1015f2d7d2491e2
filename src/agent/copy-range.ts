// One copy of a byte range between Buffers, for the engines' hot paths (relayed ranges, audit lines
// written from the message): short ranges are copied byte by byte, cheaper than Buffer.copy's native
// call; longer ones by it.

/** Ranges up to this long are copied byte by byte. */
const SHORT_COPY = 64;

/** Copies `from[start, end)` into `to` at `at`; returns where the copy ends in `to`. */
export function copyRange(from: Buffer, start: number, end: number, to: Buffer, at: number): number {
  if (end - start > SHORT_COPY) return at + from.copy(to, at, start, end);
  for (let i = start; i < end; i++) to[at++] = from[i]!;
  return at;
}
