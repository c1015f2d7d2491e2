// The RESP fuzz harness, shared by the unit test (hundreds of cases in `make test`) and
// bench/fuzz-redis.ts (a million). Three properties:
//  - valid streams (multibulk with binary args, inline commands; nested replies) parse to exactly what
//    was encoded, however TCP cuts them;
//  - any bytes — random, RESP-shaped, or mutated valid streams — either parse or end with a typed
//    PROTOCOL_ERROR / MESSAGE_TOO_LARGE, so bad input can only ever end its own session;
//  - what the request parser accepts is what the backend will run: a command's `raw` bytes, parsed
//    again on their own, give the same name and arguments (no desync between agent and backend).
import fc from 'fast-check';
import { typedOnly } from './typed-errors.js';
import { type RedisCommand, RequestParser } from '../../src/engines/redis/parser.js';
import { ReplyFramer, type RespValue, decodeReply } from '../../src/engines/redis/reply-parser.js';
import { encodeCommand, encodeValue } from '../../src/engines/redis/serializer.js';

const LIMITS = { maxBulk: 4096, maxArgs: 64, maxInline: 512, maxCommand: 64 * 1024 };

/** Splits `input` at the given offsets (taken modulo its length). */
export function cut(input: Buffer, offsets: number[]): Buffer[] {
  const points = [...new Set(offsets.map((o) => o % (input.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let from = 0;
  for (const p of points) {
    out.push(input.subarray(from, p));
    from = p;
  }
  out.push(input.subarray(from));
  return out;
}

export function parseAll(chunks: Buffer[]): RedisCommand[] {
  const cmds: RedisCommand[] = [];
  const p = new RequestParser((c) => cmds.push(c), LIMITS);
  for (const c of chunks) p.feed(c);
  return cmds;
}

const word = fc.stringMatching(/^[A-Za-z0-9_:.-]{1,12}$/);
const binaryArg = fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.from(a));

/** A stream of valid commands and the argument lists it encodes. */
export const commandStream = fc
  .array(
    fc.oneof(
      fc
        .array(binaryArg, { minLength: 1, maxLength: 6 })
        .map((args) => ({ args, bytes: encodeCommand(args) })),
      fc.array(word, { minLength: 1, maxLength: 5 }).map((ws) => ({
        args: ws.map((w) => Buffer.from(w)),
        bytes: Buffer.from(`${ws.join(' ')}\r\n`),
      })),
    ),
    { maxLength: 12 },
  )
  .map((cmds) => ({ input: Buffer.concat(cmds.map((c) => c.bytes)), expected: cmds.map((c) => c.args) }));

/** Reply trees of every RESP2 type. */
export const replyValue: fc.Arbitrary<RespValue> = fc.letrec<{ v: RespValue }>((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.stringMatching(/^[ -~]{0,20}$/),
    fc.integer({ min: -1e12, max: 1e12 }),
    binaryArg,
    fc.constant(null),
    fc.array(tie('v'), { maxLength: 5 }),
  ),
})).v;

const respToken = fc.constantFrom(
  '*',
  '$',
  ':',
  '+',
  '-',
  '\r\n',
  '\r',
  '\n',
  '0',
  '1',
  '2',
  '-1',
  '3',
  'x',
  ' ',
  '"',
  "'",
);
/** Random bytes, and byte soups made of RESP tokens (more likely to reach deep parser states). */
export const hostileBytes = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
  fc.array(respToken, { maxLength: 60 }).map((t) => Buffer.from(t.join(''))),
);

/** Valid streams with one byte changed, inserted or removed. */
export const mutatedStream = fc
  .tuple(commandStream, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('flip', 'insert', 'drop'))
  .map(([{ input }, at, byte, how]) => {
    if (input.length === 0) return Buffer.from([byte]);
    const i = at % input.length;
    if (how === 'flip')
      return Buffer.concat([input.subarray(0, i), Buffer.from([byte]), input.subarray(i + 1)]);
    if (how === 'insert')
      return Buffer.concat([input.subarray(0, i), Buffer.from([byte]), input.subarray(i)]);
    return Buffer.concat([input.subarray(0, i), input.subarray(i + 1)]);
  });

/** Valid command streams parse exactly, under any chunking. */
export function checkCommands(stream: { input: Buffer; expected: Buffer[][] }, offsets: number[]): void {
  const cmds = parseAll(cut(stream.input, offsets));
  const got = cmds.map((c) => c.args.map((a) => a.toString('hex')));
  const want = stream.expected.map((args) => args.map((a) => a.toString('hex')));
  if (JSON.stringify(got) !== JSON.stringify(want)) {
    throw new Error(`parsed ${JSON.stringify(got)}, encoded ${JSON.stringify(want)}`);
  }
}

/** Valid reply trees frame whole and decode back to themselves, under any chunking. */
export function checkReplies(values: RespValue[], offsets: number[]): void {
  const encoded = values.map(encodeValue);
  const frames: Buffer[] = [];
  const framer = new ReplyFramer((f) => frames.push(f));
  for (const c of cut(Buffer.concat(encoded), offsets)) framer.feed(c);
  if (frames.length !== encoded.length || frames.some((f, i) => !f.equals(encoded[i]!))) {
    throw new Error(`framed ${frames.length} frames, encoded ${encoded.length}`);
  }
  for (const [i, f] of frames.entries()) {
    if (!encodeValue(decodeReply(f)).equals(encoded[i]!))
      throw new Error('decode/encode round trip changed a frame');
  }
}

/** Any bytes: typed errors only; accepted commands re-parse identically; accepted frames decode. */
export function checkHostile(input: Buffer, offsets: number[]): void {
  const chunks = cut(input, offsets);
  typedOnly(() => {
    for (const cmd of parseAll(chunks)) {
      const again = parseAll([cmd.raw]);
      if (again.length !== 1 || again[0]!.name !== cmd.name || !sameArgs(again[0]!.args, cmd.args)) {
        throw new Error(`raw bytes of "${cmd.name}" re-parse differently: ${cmd.raw.toString('hex')}`);
      }
    }
  });
  typedOnly(() => {
    const framer = new ReplyFramer((f) => decodeReply(f));
    for (const c of chunks) framer.feed(c);
  });
}

function sameArgs(a: Buffer[], b: Buffer[]): boolean {
  return a.length === b.length && a.every((x, i) => x.equals(b[i]!));
}

const offsets = fc.array(fc.nat(), { maxLength: 4 });

/** Every property, labelled; the unit test and the long fuzz run both iterate this list. */
export const redisFuzzProperties: [string, (params: fc.Parameters<unknown>) => void][] = [
  ['valid command streams', (p) => fc.assert(fc.property(commandStream, offsets, checkCommands), p)],
  [
    'valid reply trees',
    (p) => fc.assert(fc.property(fc.array(replyValue, { maxLength: 6 }), offsets, checkReplies), p),
  ],
  ['random and RESP-shaped bytes', (p) => fc.assert(fc.property(hostileBytes, offsets, checkHostile), p)],
  ['mutated valid streams', (p) => fc.assert(fc.property(mutatedStream, offsets, checkHostile), p)],
];
