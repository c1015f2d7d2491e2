// The RESP fuzz harness, shared by the unit test (hundreds of cases in `make test`) and
// bench/fuzz-redis.ts (a million). Three properties:
//  - valid streams (multibulk with binary args, inline commands; nested replies, RESP2 and RESP3 with
//    attributes and streamed strings/aggregates) parse to exactly what was encoded, however TCP cuts them;
//  - any bytes — random, RESP-shaped, or mutated valid streams — either parse or end with a typed
//    PROTOCOL_ERROR / MESSAGE_TOO_LARGE, so bad input can only ever end its own session;
//  - what the request parser accepts is what the backend will run: a command's `raw` bytes, parsed
//    again on their own, give the same name and arguments (no desync between agent and backend).
import fc from 'fast-check';
import { typedOnly } from './typed-errors.js';
import { type RedisCommand, RequestParser, owned } from '../../src/engines/redis/parser.js';
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
} from '../../src/engines/redis/reply-parser.js';
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
  // As the session parses: the parser's one reused object, kept with owned().
  const p = new RequestParser((c) => cmds.push(owned(c)), { ...LIMITS, reuse: true });
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

const ascii = fc.stringMatching(/^[ -~]{0,20}$/);

/** A RESP3 reply as it may arrive (attributes, streamed strings and aggregates) and the value it decodes to. */
interface Wire {
  bytes: Buffer;
  value: RespValue;
}

const plain = (value: RespValue): Wire => ({ bytes: encodeValue(value, 3), value });

function aggregate(type: string, items: Wire[], streamed: boolean): Wire {
  const pairs = type === '%';
  const kept = pairs ? items.slice(0, items.length - (items.length % 2)) : items;
  const values = kept.map((w) => w.value);
  const head = streamed ? `${type}?\r\n` : `${type}${pairs ? kept.length / 2 : kept.length}\r\n`;
  const bytes = Buffer.concat([
    Buffer.from(head),
    ...kept.map((w) => w.bytes),
    Buffer.from(streamed ? '.\r\n' : ''),
  ]);
  if (type === '*') return { bytes, value: values };
  if (type === '~') return { bytes, value: new RespSet(values) };
  if (type === '>') return { bytes, value: new RespPush(values) };
  const entries: [RespValue, RespValue][] = [];
  for (let i = 0; i < values.length; i += 2) entries.push([values[i]!, values[i + 1]!]);
  return { bytes, value: new RespMap(entries) };
}

function streamedString(parts: Buffer[]): Wire {
  const chunks = parts
    .filter((p) => p.length > 0)
    .map((p) => Buffer.concat([Buffer.from(`;${p.length}\r\n`), p, Buffer.from('\r\n')]));
  return {
    bytes: Buffer.concat([Buffer.from('$?\r\n'), ...chunks, Buffer.from(';0\r\n')]),
    value: Buffer.concat(parts),
  };
}

/** Every RESP3 type, nested, with attributes before replies and streamed forms mixed in. */
export const wireReply: fc.Arbitrary<Wire> = fc.letrec<{ w: Wire }>((tie) => ({
  w: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc
      .oneof(
        ascii,
        fc.integer({ min: -1e12, max: 1e12 }),
        fc.boolean(),
        binaryArg,
        fc.constant(null),
        fc.double().map((d) => new RespDouble(d)),
        fc.bigInt().map((n) => new RespBigNumber(n)),
        fc.tuple(fc.constantFrom('txt', 'mkd'), binaryArg).map(([f, t]) => new RespVerbatim(f, t)),
        fc
          .tuple(fc.constantFrom('ERR', 'MOVED'), ascii, fc.boolean())
          .map(([p, t, multiline]) => new RespError(`${p} ${t}${multiline ? '\r\nmore' : ''}`)),
      )
      .map(plain),
    fc.array(binaryArg, { maxLength: 4 }).map(streamedString),
    fc
      .tuple(fc.constantFrom('*', '%', '~', '>'), fc.array(tie('w'), { maxLength: 5 }), fc.boolean())
      .map(([t, items, streamed]) => aggregate(t, items, streamed)),
    fc.tuple(fc.array(tie('w'), { maxLength: 4 }), tie('w')).map(([attr, reply]) => ({
      bytes: Buffer.concat([aggregate('%', attr, false).bytes.fill('|', 0, 1), reply.bytes]),
      value: reply.value,
    })),
  ),
})).w;

/** RESP3 streams frame one frame per reply, decode to their values and encode back to the same values. */
export function checkReplies3(replies: Wire[], offsets: number[]): void {
  const frames: Buffer[] = [];
  const framer = new ReplyFramer((f) => frames.push(f));
  for (const c of cut(Buffer.concat(replies.map((r) => r.bytes)), offsets)) framer.feed(c);
  if (frames.length !== replies.length || frames.some((f, i) => !f.equals(replies[i]!.bytes))) {
    throw new Error(`framed ${frames.length} frames, sent ${replies.length}`);
  }
  for (const [i, f] of frames.entries()) {
    const want = encodeValue(replies[i]!.value, 3);
    const got = encodeValue(decodeReply(f), 3);
    if (!got.equals(want))
      throw new Error(`decoded ${got.toString('latin1')}, sent ${want.toString('latin1')}`);
    if (!encodeValue(decodeReply(want), 3).equals(want))
      throw new Error('decode/encode round trip changed a frame');
  }
}

const respToken = fc.constantFrom(
  '*',
  '%',
  '~',
  '>',
  '|',
  '_',
  '#',
  ',',
  '(',
  '!',
  '=',
  '?',
  '.',
  ';',
  't',
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

/** Valid streams (commands, or RESP3 replies) with one byte changed, inserted or removed. */
export const mutatedStream = fc
  .tuple(
    fc.oneof(
      commandStream.map((c) => c.input),
      fc.array(wireReply, { maxLength: 4 }).map((rs) => Buffer.concat(rs.map((r) => r.bytes))),
    ),
    fc.nat(),
    fc.integer({ min: 0, max: 255 }),
    fc.constantFrom('flip', 'insert', 'drop'),
  )
  .map(([input, at, byte, how]) => {
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
  const encoded = values.map((v) => encodeValue(v));
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
  [
    'valid RESP3 replies (attributes, streams)',
    (p) => fc.assert(fc.property(fc.array(wireReply, { maxLength: 6 }), offsets, checkReplies3), p),
  ],
  ['random and RESP-shaped bytes', (p) => fc.assert(fc.property(hostileBytes, offsets, checkHostile), p)],
  ['mutated valid streams', (p) => fc.assert(fc.property(mutatedStream, offsets, checkHostile), p)],
];
