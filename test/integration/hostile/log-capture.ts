// The agent's own log lines, captured: what an operator's log pipeline would get, at debug (everything).
import { createLogger } from '../../../src/log.js';
import type { Logger } from '../../../src/log.js';
import { UNSEEN } from '../../../src/unseen.js';
import { expect } from 'vitest';

export interface CapturedLog {
  log: Logger;
  /** Each line as written. */
  readonly lines: string[];
  /** Lines whose msg is `msg`. */
  withMsg(msg: string): Record<string, unknown>[];
  /** Fails if any line holds one of `secrets`, or a character a log viewer would hide or obey. */
  expectClean(secrets: readonly string[]): void;
}

export function capturedLog(level = 'debug'): CapturedLog {
  const lines: string[] = [];
  const log = createLogger('log-lines', level, { write: (line: string) => void lines.push(line) });
  return {
    log,
    lines,
    withMsg: (msg) => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg),
    expectClean(secrets) {
      expect(lines.length).toBeGreaterThan(0);
      for (const line of lines) {
        for (const secret of secrets) expect(line).not.toContain(secret);
        expect(line).not.toMatch(UNSEEN);
      }
    },
  };
}
