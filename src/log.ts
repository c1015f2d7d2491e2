// Structured JSON logs through pino. Secrets never reach a log line: known secret-bearing fields are
// redacted wherever they appear, and code logs identities, not credentials.
import { pino, type Logger } from 'pino';

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
  return pino({ name, level, redact: { paths: REDACT, censor: '[redacted]' }, base: { pid: process.pid } });
}

export type { Logger };
