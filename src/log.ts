// Structured JSON logs through pino. Secrets never reach a log line: known secret-bearing fields are
// redacted wherever they appear, and code logs identities, not credentials. Fields hold what clients
// chose (database user and name, a malformed byte): pino's JSON escapes C0 controls only, so each line
// has the characters a log viewer would hide or obey escaped too, as the audit log has (unseen.ts).
import { Socket } from 'node:net';
import { pino, type DestinationStream, type Logger } from 'pino';
import { escapeUnseen } from './unseen.js';

const REDACT = [
  'password',
  'token',
  'secret',
  'authorization',
  'sessionToken',
  'secretAccessKey',
  '*.password',
  '*.token',
  '*.secret',
  '*.authorization',
  '*.sessionToken',
  '*.secretAccessKey',
  '*.key',
  '*.keyPem',
];

/** `to`: where lines go (tests); stdout by default. */
export function createLogger(
  name: string,
  level = process.env.DRAWBRIDGE_LOG_LEVEL ?? 'info',
  to: DestinationStream | undefined = stdoutStream(),
): Logger {
  const opts = {
    name,
    level,
    redact: { paths: REDACT, censor: '[redacted]' },
    base: { pid: process.pid },
    hooks: { streamWrite: escapeUnseen },
  };
  return to ? pino(opts, to) : pino(opts);
}

/**
 * stdout when it is a pipe or a socket (a container's log, where the audit log goes too, in order with
 * these lines): process.stdout, a non-blocking stream whose writes queue in order behind the audit's
 * (src/agent/audit-file.ts). pino's own writer would write the same pipe on its own, and a log line
 * could land inside an audit line the pipe took only half of. A file or a terminal: pino's writer.
 */
function stdoutStream(): DestinationStream | undefined {
  const stdout = process.stdout;
  if (!(stdout instanceof Socket) || stdout.isTTY) return undefined;
  // A reader gone (EPIPE) is not the agent's failure: the lines are lost as pino's would be.
  if (stdout.listenerCount('error') === 0) stdout.on('error', () => undefined);
  return boundedLines(stdout);
}

/** Log bytes a full pipe may hold in memory; past it lines are dropped, then reported as a count. */
export const MAX_QUEUED_LOG_BYTES = 4 << 20;

/**
 * Log lines to a stream that may stop taking them (a stuck pipe reader): they queue in memory up to
 * `maxBytes` not yet written, then are dropped — a stranger's failed handshakes must not grow the agent
 * without bound — and once the queue is written, one warning says how many were lost.
 */
export function boundedLines(out: Pick<Socket, 'write'>, maxBytes = MAX_QUEUED_LOG_BYTES): DestinationStream {
  let queued = 0;
  let dropped = 0;
  const written = (bytes: number) => () => {
    queued -= bytes;
    if (queued === 0 && dropped > 0) {
      const line = {
        level: 40,
        time: Date.now(),
        pid: process.pid,
        msg: `${dropped} log lines dropped: stdout was not read`,
      };
      dropped = 0;
      send(`${JSON.stringify(line)}\n`);
    }
  };
  const send = (line: string, bytes = Buffer.byteLength(line)) => {
    queued += bytes;
    out.write(line, written(bytes));
  };
  return {
    write(line: string) {
      const bytes = Buffer.byteLength(line);
      if (queued + bytes > maxBytes) dropped++;
      else send(line, bytes);
    },
  };
}

export type { Logger };
