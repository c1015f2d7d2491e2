// Streaming RESP2 request parser (client → agent). Accepts what Redis accepts from clients: arrays of
// bulk strings (`*N\r\n$L\r\n...`) and inline commands (`GET key\n`, telnet style, with Redis's quote
// rules), and is at least as strict as Redis everywhere, so the agent never authorizes one command
// while the backend runs another. Commands come out in place in the socket chunks: `raw` is the exact
// command as received, forwarded without re-serialising, and its arguments are spans of it (a Buffer
// for the command or an argument only for readers that ask for `raw` or `args`).
// Inline commands are the exception: they are re-encoded as RESP arrays, so the backend runs exactly
// the arguments the agent authorized, whatever its own inline quoting rules.
import { DrawbridgeError } from '../../errors.js';
import { ChunkBuffer } from './chunk-buffer.js';
import { splitInline } from './inline.js';
import { REDIS_CONTAINER_COMMANDS, commandName, spannedName } from './command-name.js';
import { encodeCommand } from './serializer.js';

export interface RedisCommand {
  /** Lower-case command name; `parent|sub` for container commands (`config|get`, `client|kill`). */
  readonly name: string;
  /** args[0] is the command name as sent; all are slices of the received bytes (inline quotes aside). */
  readonly args: Buffer[];
  /** The exact RESP (or inline) bytes of this command, forwardable as is. */
  readonly raw: Buffer;
  /**
   * Where each argument lies in `raw`: argument i < argc is `raw[spans[2i], spans[2i + 1])` (past
   * 2·argc the array may hold stale numbers). Every command the parser or the agent makes has them, so
   * per-command readers (the audit line) need no Buffer per argument; `args` is then made from them
   * on first read.
   */
  readonly spans?: readonly number[];
  /** How many arguments `spans` describes (with `spans`). */
  readonly argc?: number;
  readonly bytes?: Buffer;
  readonly offset?: number;
  readonly end?: number;
}

/** A command whose bytes and arguments are read in place until something asks for `raw` or `args`. */
class SpannedCommand implements RedisCommand {
  private rawMade: Buffer | undefined;
  readonly argc: number;

  constructor(
    readonly name: string,
    readonly bytes: Buffer,
    readonly offset: number,
    readonly end: number,
    readonly spans: readonly number[],
    private made?: Buffer[],
  ) {
    this.argc = spans.length >> 1;
  }

  get raw(): Buffer {
    return (this.rawMade ??= this.bytes.subarray(this.offset, this.end));
  }

  get args(): Buffer[] {
    return (this.made ??= argsOf(this.bytes, this.offset, this.spans, this.argc));
  }
}

function argsOf(bytes: Buffer, offset: number, spans: readonly number[], argc: number): Buffer[] {
  const args = new Array<Buffer>(argc);
  for (let i = 0; i < argc; i++) args[i] = bytes.subarray(offset + spans[2 * i]!, offset + spans[2 * i + 1]!);
  return args;
}

const EMPTY = Buffer.alloc(0);

/**
 * The parser's one command object, filled again for each command it parses: a pipeline of small
 * commands then costs no object and no spans array per command. It is valid only during the parser's
 * callback; whatever keeps a command past it (a queue, an async step, a router that holds commands)
 * keeps `owned(cmd)`, a copy of its own.
 */
class ParsedCommand implements RedisCommand {
  name = '';
  bytes: Buffer = EMPTY;
  offset = 0;
  end = 0;
  argc = 0;
  private rawMade: Buffer | undefined;
  private made: Buffer[] | undefined;

  constructor(public spans: number[]) {}

  fill(name: string, bytes: Buffer, offset: number, end: number, argc: number, spans: number[]): void {
    this.name = name;
    this.bytes = bytes;
    this.offset = offset;
    this.end = end;
    this.argc = argc;
    this.spans = spans;
    this.rawMade = this.made = undefined;
  }

  /** Between commands: holds no socket chunk (an idle session would keep it alive) and no large spans. */
  clear(spans: number[]): void {
    this.fill('', EMPTY, 0, 0, 0, spans);
  }

  get raw(): Buffer {
    return (this.rawMade ??= this.bytes.subarray(this.offset, this.end));
  }

  get args(): Buffer[] {
    return (this.made ??= argsOf(this.bytes, this.offset, this.spans, this.argc));
  }

  /** A command of its own with the same bytes (chunks are never reused, so they stay valid) and arguments. */
  copy(): SpannedCommand {
    const spans = this.spans.slice(0, 2 * this.argc);
    return new SpannedCommand(this.name, this.bytes, this.offset, this.end, spans, this.made);
  }
}

/**
 * `cmd`, or (the parser's reused object) a copy of it that stays valid after the parser's callback:
 * for anything that keeps a command. Idempotent: a kept command comes back as itself.
 */
export function owned(cmd: RedisCommand): RedisCommand {
  return cmd instanceof ParsedCommand ? cmd.copy() : cmd;
}

/** `args` as a RESP command (encodeCommand), with the spans of its arguments. */
function encodedCommand(name: string, args: Buffer[]): SpannedCommand {
  const raw = encodeCommand(args);
  const spans = new Array<number>(args.length * 2);
  let at = String(args.length).length + 3; // *N\r\n
  for (let i = 0; i < args.length; i++) {
    const n = args[i]!.length;
    at += String(n).length + 3; // $n\r\n
    spans[2 * i] = at;
    spans[2 * i + 1] = at += n;
    at += 2;
  }
  return new SpannedCommand(name, raw, 0, raw.length, spans, args);
}

/** A command the agent sends itself (DISCARD, HELLO without its AUTH, ACL GETUSER), named as parsed ones are. */
export function agentCommand(args: readonly (string | Buffer)[]): RedisCommand {
  const bufs = args.map((a) => (Buffer.isBuffer(a) ? a : Buffer.from(a)));
  return encodedCommand(commandName(bufs), bufs);
}

/** `cmd` with spans and in place: itself, or (a command made without them) its arguments encoded again. */
export function spanned(cmd: RedisCommand): Required<RedisCommand> {
  return cmd.spans && cmd.bytes ? (cmd as Required<RedisCommand>) : encodedCommand(cmd.name, cmd.args);
}

export interface RequestParserOptions {
  /** Largest bulk string (Redis proto-max-bulk-len, 512 MB by default). */
  maxBulk?: number;
  /** Most arguments in one command. */
  maxArgs?: number;
  /** Longest inline command or header line (Redis PROTO_INLINE_MAX_SIZE, 64 KB). */
  maxInline?: number;
  /** Largest command in bytes (Redis client-query-buffer-limit, 1 GB by default). */
  maxCommand?: number;
  /** Commands named `parent|sub` (defaults to Redis 7's; the catalog may pass what the backend reports). */
  containers?: ReadonlySet<string>;
  /** Start with Redis's limits for clients that have not authenticated, until `authenticated()`. */
  unauthenticated?: boolean;
  /**
   * The callback gets the parser's one command object, filled again for each command (ParsedCommand):
   * valid during the call only, `owned(cmd)` keeps it. Without this, each command is an object of its own.
   */
  reuse?: boolean;
}

/**
 * What Redis accepts from a client that has not authenticated (networking.c): at most 10 arguments
 * of at most 16 KB each; beyond that it answers a protocol error and closes the connection. Inline
 * lines get the same 16 KB (a token AUTH fits). The whole command's bound follows from these.
 */
const UNAUTHENTICATED = { maxArgs: 10, maxBulk: 16 * 1024, maxInline: 16 * 1024, maxCommand: 256 * 1024 };

const MAX_ARGS = 1024 * 1024;
const MAX_PRESIZED_SPANS = 64;
/** Commands of up to this many arguments reuse the parser's spans array; larger ones get their own. */
const MAX_REUSED_ARGS = 16;
/** Redis's PROTO_INLINE_MAX_SIZE. */
const MAX_INLINE = 64 * 1024;

const enum Byte {
  Array = 0x2a, // *
  Bulk = 0x24, // $
  LF = 0x0a,
  CR = 0x0d,
}

function protocolError(message: string): DrawbridgeError {
  return new DrawbridgeError(
    'PROTOCOL_ERROR',
    `Protocol error: ${message}`,
    'the client sent bytes that are not RESP; use a Redis client library or redis-cli',
  );
}

/** A length over a limit (Redis's own texts), with the limit and how to change it in the hint. */
function tooLarge(message: string): DrawbridgeError {
  return new DrawbridgeError(
    'MESSAGE_TOO_LARGE',
    `Protocol error: ${message}`,
    'before AUTH a client may send 10 arguments of 16 KB at most; logged-in clients up to limits.maxRequestBytes of the Database',
  );
}

export class RequestParser {
  private readonly bytes: ChunkBuffer;
  private maxBulk: number;
  private maxArgs: number;
  private maxInline: number;
  private unauthenticated: boolean;
  /** Parsing waits for `resume()`: what follows is read with the limits the pending login decides. */
  private stopped = false;
  private readonly containers: ReadonlySet<string>;
  // Progress inside the pending multibulk command (none: argc 0): its argument count, the spans of the
  // arguments so far and the next header's offset, relative to the command start (so they survive
  // re-buffering). Small commands fill `reused`.
  private argc = 0;
  private spans: number[];
  private readonly reused = new Array<number>(2 * MAX_REUSED_ARGS).fill(0);
  private filled = 0;
  private pos = 0;
  private readonly cmd: ParsedCommand;
  private readonly reuse: boolean;

  constructor(
    private readonly onCommand: (cmd: RedisCommand) => void,
    opts: RequestParserOptions = {},
  ) {
    this.unauthenticated = opts.unauthenticated ?? false;
    const limits = this.unauthenticated ? UNAUTHENTICATED : opts;
    this.maxBulk = limits.maxBulk ?? 512 * 1024 * 1024;
    this.maxArgs = limits.maxArgs ?? MAX_ARGS;
    this.maxInline = limits.maxInline ?? MAX_INLINE;
    this.containers = opts.containers ?? REDIS_CONTAINER_COMMANDS;
    this.bytes = new ChunkBuffer(limits.maxCommand ?? 1024 * 1024 * 1024, 'command');
    this.spans = this.reused;
    this.cmd = new ParsedCommand(this.reused);
    this.reuse = opts.reuse ?? false;
  }

  /** The client authenticated: Redis's own argument limits, and commands (and bulks) up to `maxCommand`. */
  authenticated(maxCommand: number): void {
    this.unauthenticated = false;
    this.maxArgs = MAX_ARGS;
    this.maxInline = MAX_INLINE;
    this.maxBulk = this.bytes.maxFrame = maxCommand;
  }

  /** Still under the unauthenticated limits. */
  get limited(): boolean {
    return this.unauthenticated;
  }

  /**
   * Parses nothing past the command being handled until `resume()`. Before login, an AUTH pipelined
   * with a large command: the rest stays unparsed bytes (no more than already arrived) until the
   * AUTH's outcome sets the limits it is read with.
   */
  stop(): void {
    this.stopped = true;
  }

  /** Parses what arrived while stopped; throws as `feed` does. */
  resume(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.parse();
  }

  /** Bytes received but not yet part of a complete command. */
  get pending(): number {
    return this.bytes.pending;
  }

  /**
   * Parses every complete command in `chunk` (plus what was pending) and calls `onCommand` for each,
   * in order. Throws PROTOCOL_ERROR or MESSAGE_TOO_LARGE on bad input; the stream is unusable after.
   */
  feed(chunk: Buffer): void {
    if (this.bytes.append(chunk) && !this.stopped) this.parse();
  }

  private parse(): void {
    const b = this.bytes;
    b.need = 0;
    while (b.start < b.end && !this.stopped) {
      // A pending multibulk command still starts with its `*` at `start`.
      const done = b.buf[b.start] === Byte.Array ? this.multibulk() : this.inline();
      if (!done) break;
    }
    this.cmd.clear(this.reused);
    b.drained();
  }

  /** One `*N` command; false when more bytes are needed. */
  private multibulk(): boolean {
    const b = this.bytes;
    const buf = b.buf;
    const base = b.start;
    if (this.argc === 0) {
      const n = b.readInt(base + 1);
      if (b.next < 0 && n === 0) return false;
      if (!(n <= this.maxArgs)) throw this.tooMany(n);
      if (n <= 0) {
        // Redis skips empty and null arrays without a reply.
        b.start = b.next;
        return true;
      }
      this.argc = n;
      // Sized for the command up front (an empty array grows to 16 slots on its first push); a header
      // announcing a million arguments gets room only as they arrive.
      this.spans =
        n <= MAX_REUSED_ARGS ? this.reused : new Array<number>(Math.min(2 * n, MAX_PRESIZED_SPANS));
      this.filled = 0;
      this.pos = b.next - base;
    }
    // The progress in locals while the loop runs (stored back when it stops): no field write per argument.
    const spans = this.spans;
    const wanted = 2 * this.argc;
    let filled = this.filled;
    let pos = this.pos;
    while (filled < wanted) {
      const at = base + pos;
      if (at >= b.end) break;
      if (buf[at] !== Byte.Bulk) {
        throw protocolError(`expected '$', got '${String.fromCharCode(buf[at]!)}'`);
      }
      const len = b.readInt(at + 1);
      if (b.next < 0 && len === 0) break;
      if (!(len >= 0 && len <= this.maxBulk)) throw this.tooLong(len);
      const body = b.next;
      if (body + len + 2 > b.end) {
        b.need = body + len + 2 - base;
        break;
      }
      if (buf[body + len] !== Byte.CR || buf[body + len + 1] !== Byte.LF) {
        throw protocolError('bulk string not terminated by CRLF');
      }
      spans[filled++] = body - base;
      spans[filled++] = body + len - base;
      pos = body + len + 2 - base;
    }
    this.filled = filled;
    this.pos = pos;
    if (filled < wanted) return false;
    const end = base + pos;
    const argc = this.argc;
    this.argc = 0;
    this.spans = this.reused;
    b.start = end;
    // The chunk's bytes stay valid when the buffer is re-copied: old bytes are never reused.
    const cmd = this.cmd;
    cmd.fill(spannedName(buf, base, spans, argc, this.containers), buf, base, end, argc, spans);
    this.onCommand(this.reuse ? cmd : cmd.copy());
    return true;
  }

  private tooMany(n: number): DrawbridgeError {
    if (!this.unauthenticated || !(n > 0)) return protocolError('invalid multibulk length');
    return tooLarge('unauthenticated multibulk length');
  }

  private tooLong(len: number): DrawbridgeError {
    if (!(len > 0)) return protocolError('invalid bulk length');
    return tooLarge(this.unauthenticated ? 'unauthenticated bulk length' : 'invalid bulk length');
  }

  /** One inline command line; false when its newline has not arrived yet. */
  private inline(): boolean {
    const b = this.bytes;
    const base = b.start;
    const nl = b.buf.indexOf(Byte.LF, base);
    if (nl < 0 || nl >= b.end) {
      if (b.end - base > this.maxInline) throw tooLarge('too big inline request');
      return false;
    }
    if (nl - base > this.maxInline) throw tooLarge('too big inline request');
    const lineEnd = nl > base && b.buf[nl - 1] === Byte.CR ? nl - 1 : nl;
    const args = splitInline(b.buf, base, lineEnd);
    b.start = nl + 1;
    if (args === undefined) throw protocolError('unbalanced quotes in request');
    if (args.length > 0) this.onCommand(encodedCommand(commandName(args, this.containers), args));
    return true;
  }
}
