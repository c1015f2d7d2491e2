// The PostgreSQL parser fuzz harness, shared by the unit test (a few hundred cases in `make test`) and
// bench/fuzz-postgres.ts (a million). Inputs are random bytes and mutated valid message streams; each
// goes through every parser the agent runs on untrusted bytes. The property: nothing is thrown but a
// DrawbridgeError with a protocol code, so a bad packet can only ever end its own session.
import fc from 'fast-check';
import { typedOnly } from './typed-errors.js';
import { isDrawbridgeError } from '../../src/errors.js';
import { CLIENT_CODES, QueryAuditor, SERVER_CODES } from '../../src/engines/postgres/audit.js';
import {
  decodeAuth,
  decodeBackendKey,
  decodeErrorFields,
  decodePassword,
} from '../../src/engines/postgres/decoders.js';
import { startupRequest } from '../../src/engines/postgres/frontend.js';
import {
  BACKEND_LIMITS,
  FRONTEND_LIMITS,
  type FrameLimits,
  HandshakeBuffer,
  MessageScanner,
  PASSWORD_LIMITS,
} from '../../src/engines/postgres/parser.js';
import { be, fe, msg } from '../unit/postgres/factory.js';

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

const mutations = fc.array(
  fc.tuple(
    fc.constantFrom('flip', 'set', 'cut', 'drop', 'insert'),
    fc.nat(),
    fc.integer({ min: 0, max: 255 }),
  ),
  { minLength: 1, maxLength: 4 },
);
type Mutation = [string, number, number];

/** `input` with bytes flipped, set, dropped or inserted, or cut short. */
function mutate(input: Buffer, list: Mutation[]): Buffer {
  let buf = input;
  for (const [kind, at, value] of list) {
    const i = buf.length === 0 ? 0 : at % buf.length;
    if (kind === 'flip' && buf.length) buf[i] = buf[i]! ^ (1 << (value % 8));
    else if (kind === 'set' && buf.length) buf[i] = value;
    else if (kind === 'cut') buf = buf.subarray(0, i);
    else if (kind === 'drop') buf = Buffer.concat([buf.subarray(0, i), buf.subarray(i + 1)]);
    else if (kind === 'insert')
      buf = Buffer.concat([buf.subarray(0, i), Buffer.from([value]), buf.subarray(i)]);
  }
  return Buffer.from(buf);
}

/** A valid stream, then broken: bytes flipped, cut, dropped or inserted. */
export const mutatedStream: fc.Arbitrary<Buffer> = fc
  .tuple(fc.array(fc.oneof(frontendMessage, handshakeMessage), { minLength: 1, maxLength: 5 }), mutations)
  .map(([messages, list]) => mutate(Buffer.concat(messages), list));

/** Server answers during a session, including those that settle prepared statements. */
const serverMessage: fc.Arbitrary<Buffer> = fc.oneof(
  fc.constantFrom('1', '2', '3', 'G', 'n', 's', 'I').map((code) => msg(code)),
  fc.constantFrom('I', 'T', 'E').map(be.readyForQuery),
  name.map(be.commandComplete),
  fc.dictionary(fc.constantFrom('S', 'C', 'M'), name).map(be.error),
);

/**
 * One connection across the login boundary: the client's startup packet, its password message (a
 * token), then session messages; the server's login answers, then its answers to the session. Either
 * side may be broken (the client's bytes mutated, the server's answers in any order).
 */
export const loginSequence: fc.Arbitrary<{ client: Buffer; server: Buffer; cuts: number[] }> = fc
  .record({
    params: fc.dictionary(
      fc.constantFrom('user', 'database', 'options', 'role', 'replication', 'application_name', '_pq_.x'),
      fc.oneof(name, fc.constantFrom('-c role=x', '--session-authorization=y', 'alice', 'off')),
      { maxKeys: 4 },
    ),
    token: name,
    session: fc.array(frontendMessage, { maxLength: 8 }),
    answers: fc.array(serverMessage, { maxLength: 10 }),
    broken: fc.option(mutations),
    cuts: fc.array(fc.nat(), { maxLength: 4 }),
  })
  .map(({ params, token, session, answers, broken, cuts }) => {
    const client = Buffer.concat([fe.startup({ user: 'alice', ...params }), fe.password(token), ...session]);
    const login = [
      be.authOk(),
      be.parameterStatus('server_version', '15'),
      be.backendKey(1, 2),
      be.readyForQuery(),
    ];
    return {
      client: broken ? mutate(client, broken) : client,
      server: Buffer.concat([...login, ...answers]),
      cuts,
    };
  });

/** `input` cut at the given points (TCP chunks). */
function chunked(input: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => c % (input.length + 1)))].sort((a, b) => a - b);
  return [0, ...points].map((p, i, all) => input.subarray(p, all[i + 1] ?? input.length));
}

/** The client's side of a connection, phase by phase as the agent reads it: startup, password, relay. */
class ClientSide {
  private phase: 'startup' | 'password' | 'relay' | 'refused' = 'startup';
  private readonly buffer = new HandshakeBuffer();
  private readonly scanner = new MessageScanner(FRONTEND_LIMITS, CLIENT_CODES, 64);

  constructor(private readonly auditor: QueryAuditor) {}

  push(chunk: Buffer): void {
    if (this.phase === 'relay') return void this.scanner.scan(chunk, this.auditor.onMessage);
    if (this.phase === 'refused') return;
    this.buffer.push(chunk);
    for (;;) {
      if (this.phase === 'startup') {
        const packet = this.buffer.startup();
        if (!packet) return;
        if (packet.kind !== 'startup') continue;
        this.phase = login(() => startupRequest(packet.params)) ? 'password' : 'refused';
        if (this.phase === 'refused') return;
      } else {
        const frame = this.buffer.message(PASSWORD_LIMITS);
        if (!frame) return;
        decodePassword(frame.body);
        this.phase = 'relay';
        const rest = this.buffer.take();
        if (rest.length > 0) this.scanner.scan(rest, this.auditor.onMessage);
        return;
      }
    }
  }
}

/** A login refusal (no user, a role option, replication) is a typed outcome too; false when refused. */
function login(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (isDrawbridgeError(err, 'AUTHN_FAILED') || isDrawbridgeError(err, 'ACCESS_DENIED')) return false;
    throw err;
  }
}

/** Plays one connection: client and server chunks interleaved, as the agent would see them. */
export function feedLogin(seq: { client: Buffer; server: Buffer; cuts: number[] }): void {
  typedOnly(() => {
    const auditor = new QueryAuditor(
      () => undefined,
      () => 64,
    );
    const client = new ClientSide(auditor);
    const serverLogin = new HandshakeBuffer();
    const serverRelay = new MessageScanner(BACKEND_LIMITS, SERVER_CODES);
    let serverInRelay = false;
    const fromClient = chunked(seq.client, seq.cuts);
    const fromServer = chunked(
      seq.server,
      seq.cuts.map((c) => c * 7),
    );
    for (let i = 0; i < Math.max(fromClient.length, fromServer.length); i++) {
      if (fromClient[i]) client.push(fromClient[i]!);
      const s = fromServer[i];
      if (!s) continue;
      if (serverInRelay) {
        serverRelay.scan(s, auditor.onServerMessage);
        continue;
      }
      serverLogin.push(s);
      for (let f = serverLogin.message(BACKEND_LIMITS); f; f = serverLogin.message(BACKEND_LIMITS)) {
        decodeBackend(f.code, f.body);
        if (f.code === 0x5a) {
          serverInRelay = true;
          serverRelay.scan(serverLogin.take(), auditor.onServerMessage);
          break;
        }
      }
    }
  });
}

export const randomBytes: fc.Arbitrary<Buffer> = bytes(96);
