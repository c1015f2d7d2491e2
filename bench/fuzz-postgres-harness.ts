// The PostgreSQL parser fuzz harness, shared by the unit test (a few hundred cases in `make test`) and
// bench/fuzz-postgres.ts (a million). Inputs are random bytes and mutated valid message streams; each
// goes through every parser the agent runs on untrusted bytes. The property: nothing is thrown but a
// DrawbridgeError with a protocol code, so a bad packet can only ever end its own session.
import fc from 'fast-check';
import { typedOnly } from './fuzz-typed-errors.js';
import { CLIENT_CODES, QueryAuditor } from '../src/engines/postgres/audit.js';
import { decodeAuth, decodeBackendKey, decodeErrorFields } from '../src/engines/postgres/decoders.js';
import {
  BACKEND_LIMITS,
  FRONTEND_LIMITS,
  type FrameLimits,
  HandshakeBuffer,
  MessageScanner,
  PASSWORD_LIMITS,
} from '../src/engines/postgres/parser.js';
import { be, fe } from '../test/unit/postgres/factory.js';

function drainStartup(chunks: Buffer[]): void {
  const buf = new HandshakeBuffer();
  for (const c of chunks) {
    buf.push(c);
    while (buf.startup() !== undefined);
  }
}

function drainFrames(
  chunks: Buffer[],
  limits: FrameLimits,
  decode: (code: number, body: Buffer) => void,
): void {
  const buf = new HandshakeBuffer();
  for (const c of chunks) {
    buf.push(c);
    for (let f = buf.message(limits); f; f = buf.message(limits)) decode(f.code, f.body);
  }
}

function decodeBackend(code: number, body: Buffer): void {
  if (code === 0x52) decodeAuth(body);
  else if (code === 0x45) decodeErrorFields(body);
  else if (code === 0x4b) decodeBackendKey(body);
}

function scanRelay(chunks: Buffer[]): void {
  const scanner = new MessageScanner(FRONTEND_LIMITS, CLIENT_CODES, 64);
  const auditor = new QueryAuditor(
    () => undefined,
    () => 256,
  );
  for (const c of chunks) scanner.scan(c, auditor.onMessage);
}

/** Feeds `chunks` (one input cut into TCP-like pieces) to every parser the agent runs on client bytes. */
export function feed(chunks: Buffer[]): void {
  typedOnly(() => drainStartup(chunks));
  typedOnly(() => drainFrames(chunks, PASSWORD_LIMITS, () => undefined));
  typedOnly(() => drainFrames(chunks, BACKEND_LIMITS, decodeBackend));
  typedOnly(() => scanRelay(chunks));
}

/** Feeds `input` whole, then cut in two at every offset. */
export function feedAllCuts(input: Buffer): void {
  feed([input]);
  for (let i = 0; i <= input.length; i++) feed([input.subarray(0, i), input.subarray(i)]);
}

const name = fc.string({ maxLength: 12 }).filter((s) => !s.includes('\0'));
const bytes = (maxLength: number) => fc.uint8Array({ maxLength }).map((a) => Buffer.from(a));

/** Well-formed frontend messages of every type the relay sees. */
export const frontendMessage: fc.Arbitrary<Buffer> = fc.oneof(
  name.map(fe.query),
  fc.tuple(name, name, fc.array(fc.integer(), { maxLength: 3 })).map(([n, q, t]) => fe.parse(n, q, t)),
  fc
    .tuple(name, name, fc.array(fc.option(bytes(8)), { maxLength: 4 }), fc.boolean())
    .map(([p, s, values, binary]) => fe.bind(p, s, binary ? [1] : [], values)),
  fc.tuple(fc.constantFrom<'S' | 'P'>('S', 'P'), name).map(([k, n]) => fe.close(k, n)),
  fc.tuple(fc.constantFrom<'S' | 'P'>('S', 'P'), name).map(([k, n]) => fe.describe(k, n)),
  name.map((p) => fe.execute(p)),
  bytes(40).map(fe.copyData),
  fc.constantFrom(fe.sync(), fe.flush(), fe.copyDone(), fe.terminate()),
);

/** Startup-phase packets and the backend's handshake messages. */
export const handshakeMessage: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constantFrom(fe.sslRequest(), fe.gssencRequest(), be.authOk(), be.authCleartext(), be.readyForQuery()),
  fc.tuple(fc.integer(), fc.integer()).map(([p, s]) => fe.cancel(p, s)),
  fc.dictionary(name, name, { maxKeys: 3 }).map((params) => fe.startup(params)),
  fc.array(name, { maxLength: 3 }).map(be.authSasl),
  name.map(be.authSaslContinue),
  bytes(4).map((salt) => be.authMd5(Buffer.concat([salt, Buffer.alloc(4)]).subarray(0, 4))),
  fc.tuple(fc.integer(), fc.integer()).map(([p, s]) => be.backendKey(p, s)),
  fc.dictionary(fc.constantFrom('S', 'C', 'M', 'H', 'D'), name).map(be.error),
);

/** A valid stream, then broken: bytes flipped, cut, dropped or inserted. */
export const mutatedStream: fc.Arbitrary<Buffer> = fc
  .tuple(
    fc.array(fc.oneof(frontendMessage, handshakeMessage), { minLength: 1, maxLength: 5 }),
    fc.array(
      fc.tuple(
        fc.constantFrom('flip', 'set', 'cut', 'drop', 'insert'),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
      ),
      { minLength: 1, maxLength: 4 },
    ),
  )
  .map(([messages, mutations]) => {
    let buf = Buffer.concat(messages);
    for (const [kind, at, value] of mutations) {
      const i = buf.length === 0 ? 0 : at % buf.length;
      if (kind === 'flip' && buf.length) buf[i] = buf[i]! ^ (1 << (value % 8));
      else if (kind === 'set' && buf.length) buf[i] = value;
      else if (kind === 'cut') buf = buf.subarray(0, i);
      else if (kind === 'drop') buf = Buffer.concat([buf.subarray(0, i), buf.subarray(i + 1)]);
      else if (kind === 'insert')
        buf = Buffer.concat([buf.subarray(0, i), Buffer.from([value]), buf.subarray(i)]);
    }
    return Buffer.from(buf);
  });

export const randomBytes: fc.Arbitrary<Buffer> = bytes(96);
