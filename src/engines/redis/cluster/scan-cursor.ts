// SCAN over a cluster as if it were one server: the cursor the client sees carries which master is
// being scanned (low bits) and that master's own cursor (high bits). Masters are scanned one after
// another in the topology's stable order (by lowest owned slot), so the iteration has Redis's usual
// guarantee — every key present for the whole scan is returned at least once — as long as slots do
// not move during it. The result still fits the unsigned 64-bit integer clients parse cursors into.

/** Up to 1024 masters (Redis Cluster's documented ceiling is about 1000 nodes). */
const NODE_BITS = 10n;
const NODE_MASK = (1n << NODE_BITS) - 1n;
const MAX_NODE_CURSOR = 1n << (64n - NODE_BITS);
const MAX_U64 = (1n << 64n) - 1n;

export interface ScanPosition {
  /** Index into the ordered master list. */
  node: number;
  /** The cursor to send to that master. */
  cursor: string;
}

/** The client's cursor as a position, or undefined when it is not one this agent could have issued. */
export function decodeScanCursor(text: string, masterCount: number): ScanPosition | undefined {
  if (!/^\d{1,20}$/.test(text)) return undefined;
  const c = BigInt(text);
  if (c > MAX_U64) return undefined;
  const node = Number(c & NODE_MASK);
  if (node >= masterCount && c !== 0n) return undefined;
  return { node, cursor: (c >> NODE_BITS).toString() };
}

export function encodeScanCursor(pos: ScanPosition): string {
  const nodeCursor = BigInt(pos.cursor);
  if (nodeCursor >= MAX_NODE_CURSOR) throw new RangeError(`node cursor ${pos.cursor} too large to encode`);
  return ((nodeCursor << NODE_BITS) | BigInt(pos.node)).toString();
}

/**
 * The cursor to hand back after master `node` answered `nodeCursor`: continue on that master, move to
 * the next one when it is done, or "0" when the last master is done.
 */
export function nextScanCursor(node: number, nodeCursor: string, masterCount: number): string {
  if (nodeCursor !== '0') return encodeScanCursor({ node, cursor: nodeCursor });
  return node + 1 < masterCount ? encodeScanCursor({ node: node + 1, cursor: '0' }) : '0';
}
