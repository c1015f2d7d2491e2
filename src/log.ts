// Structured JSON logs through pino. Secrets never reach a log line: known secret-bearing fields are
// redacted wherever they appear, and code logs identities, not credentials.
import { Socket } from 'node:net';
import { pino, type DestinationStream, type Logger } from 'pino';

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

export function createLogger(name: string, level = process.env.DRAWBRIDGE_LOG_LEVEL ?? 'info'): Logger {
  const opts = { name, level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } };
  const stdout = stdoutStream();
  return stdout ? pino(opts, stdout) : pino(opts);
}

/**
 * stdout when it is a pipe or a socket (a container's log, where the audit log goes too, in order with
 * these lines): process.stdout, a non-blocking stream whose writes queue in order behind the audit's
 * (src/agent/audit-file.ts). pino's own writer would write the same pipe on its own, and a log line
 * could land inside an audit line the pipe took only half of; when the pipe is full its lines wait in
 * memory, as pino's would, and go out once it is read again. A file or a terminal: pino's writer.
 */
function stdoutStream(): DestinationStream | undefined {
  const stdout = process.stdout;
  if (!(stdout instanceof Socket) || stdout.isTTY) return undefined;
  // A reader gone (EPIPE) is not the agent's failure: the lines are lost as pino's would be.
  if (stdout.listenerCount('error') === 0) stdout.on('error', () => undefined);
  return stdout;
}

export type { Logger };
