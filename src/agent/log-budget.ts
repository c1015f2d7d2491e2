// Log lines a client causes at its own pace (a refused handshake, malformed input, a limit, a denial, a
// script's fake redirect). Without a bound a stranger looping on connect writes a line per connection:
// megabytes a second into the pod's log, which then rotates away the lines, and the audit lines sharing
// stdout, that an operator needs. Each such message gets a few lines a window; the rest are counted,
// and one line per message says how many were not written. Metrics and the audit still count each.
import type { Logger } from '../log.js';

/** Lines of one message written per window; the window's length. */
export const LOG_BURST = 20;
export const LOG_WINDOW_MS = 10_000;

type Level = 'info' | 'warn';

interface Spent {
  lines: number;
  dropped: number;
  level: Level;
  msg: string;
}

export class LogBudget {
  /** By kind: the callers' fixed texts (a message, an error code), so a handful of entries. */
  private readonly spent = new Map<string, Spent>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly log: Logger,
    private readonly burst = LOG_BURST,
    private readonly windowMs = LOG_WINDOW_MS,
  ) {}

  /** `kind`: what shares a budget, when one message covers causes a stranger must not crowd out. */
  info(fields: Record<string, unknown>, msg: string, kind = msg): void {
    if (this.take(kind, msg, 'info')) this.log.info(fields, msg);
  }

  warn(fields: Record<string, unknown>, msg: string, kind = msg): void {
    if (this.take(kind, msg, 'warn')) this.log.warn(fields, msg);
  }

  private take(kind: string, msg: string, level: Level): boolean {
    if (!this.log.isLevelEnabled(level)) return false;
    let spent = this.spent.get(kind);
    if (!spent) this.spent.set(kind, (spent = { lines: 0, dropped: 0, level, msg }));
    if (!this.timer) {
      this.timer = setTimeout(this.roll, this.windowMs);
      this.timer.unref();
    }
    if (spent.lines < this.burst) {
      spent.lines++;
      return true;
    }
    spent.dropped++;
    return false;
  }

  /** The window is over: each message over its budget says how many of its lines were not written. */
  private readonly roll = (): void => {
    this.timer = undefined;
    const seconds = this.windowMs / 1000;
    for (const [kind, { dropped, level, msg }] of this.spent) {
      if (dropped > 0) {
        this.log[level](
          { suppressed: dropped, windowSeconds: seconds, ...(kind === msg ? {} : { kind }) },
          `${msg}: ${dropped} more such lines in the last ${seconds} s not written`,
        );
      }
    }
    this.spent.clear();
  };
}
