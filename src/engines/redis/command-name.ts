// Command names as access rules and the catalog spell them: lower-case, `parent|sub` for container
// commands. Redis folds only ASCII letters (strcasecmp), so this does too: no Unicode case rule can
// make the agent read a different command than the backend runs. Names are interned in a small fixed
// table so the hot path does not allocate a string per command.

/** Redis 7 commands whose first argument selects a subcommand with its own ACL categories. */
export const REDIS_CONTAINER_COMMANDS: ReadonlySet<string> = new Set([
  'acl',
  'client',
  'cluster',
  'command',
  'config',
  'function',
  'latency',
  'memory',
  'module',
  'object',
  'pubsub',
  'script',
  'slowlog',
  'xgroup',
  'xinfo',
]);

const SLOTS = 1024; // power of two
const MAX_INTERNED = 32;
const internBytes: (Buffer | undefined)[] = new Array<Buffer | undefined>(SLOTS);
const internNames: string[] = new Array<string>(SLOTS);

function fold(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c + 0x20 : c;
}

/** `bytes[start, end)` lower-cased (ASCII only) as a latin1 string; one byte per character, nothing lost. */
export function lowerAscii(bytes: Buffer, start = 0, end = bytes.length): string {
  const n = end - start;
  if (n > MAX_INTERNED) return foldCopy(bytes, start, end);
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) h = Math.imul(h ^ fold(bytes[i]!), 0x01000193);
  const slot = h & (SLOTS - 1);
  const known = internBytes[slot];
  if (known !== undefined && known.length === n) {
    let same = true;
    for (let i = 0; i < n && same; i++) same = known[i] === fold(bytes[start + i]!);
    if (same) return internNames[slot]!;
  }
  // A colliding name replaces the previous one: the table stays bounded whatever clients send.
  const name = foldCopy(bytes, start, end);
  internBytes[slot] = Buffer.from(name, 'latin1');
  internNames[slot] = name;
  return name;
}

function foldCopy(bytes: Buffer, start: number, end: number): string {
  const copy = Buffer.from(bytes.subarray(start, end));
  for (let i = 0; i < copy.length; i++) copy[i] = fold(copy[i]!);
  return copy.toString('latin1');
}

/** The rule name of a command: `get`, or `config|get` for a container command with a subcommand. */
export function commandName(args: readonly Buffer[], containers = REDIS_CONTAINER_COMMANDS): string {
  const name = lowerAscii(args[0]!);
  const sub = args[1];
  if (sub === undefined || !containers.has(name)) return name;
  return `${name}|${lowerAscii(sub)}`;
}

/** commandName of `argc` arguments read in place: argument i is `buf[base + spans[2i], base + spans[2i + 1])`. */
export function spannedName(
  buf: Buffer,
  base: number,
  spans: readonly number[],
  argc: number,
  containers: ReadonlySet<string>,
): string {
  const name = lowerAscii(buf, base + spans[0]!, base + spans[1]!);
  if (argc < 2 || !containers.has(name)) return name;
  return `${name}|${lowerAscii(buf, base + spans[2]!, base + spans[3]!)}`;
}
