// Lines a client causes at its own pace: a few per message a window, the rest counted in one line.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LOG_BURST, LOG_WINDOW_MS, LogBudget } from '../../../src/agent/log-budget.js';
import { createLogger } from '../../../src/log.js';

function captured(level = 'info') {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger('t', level, { write: (l: string) => void lines.push(JSON.parse(l)) });
  return { log, lines };
}

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

describe('LogBudget', () => {
  it('writes LOG_BURST lines of a message a window, then one line with how many were not written', () => {
    const { log, lines } = captured();
    const budget = new LogBudget(log);
    for (let n = 0; n < 100_000; n++) budget.info({ n }, 'postgres connection refused');
    budget.warn({}, 'other message');
    expect(lines).toHaveLength(LOG_BURST + 1);
    expect(lines.at(LOG_BURST - 1)).toMatchObject({ n: LOG_BURST - 1 });
    vi.advanceTimersByTime(LOG_WINDOW_MS);
    expect(lines).toHaveLength(LOG_BURST + 2);
    expect(lines.at(-1)).toMatchObject({
      level: 30,
      suppressed: 100_000 - LOG_BURST,
      msg: `postgres connection refused: ${100_000 - LOG_BURST} more such lines in the last 10 s not written`,
    });
    // A new window: lines flow again.
    budget.info({ n: -1 }, 'postgres connection refused');
    expect(lines.at(-1)).toMatchObject({ n: -1, msg: 'postgres connection refused' });
    vi.advanceTimersByTime(LOG_WINDOW_MS);
    expect(lines.at(-1)).toMatchObject({ n: -1 });
  });

  it('gives each kind of one message its own budget: a flood of one hides none of the other', () => {
    const { log, lines } = captured();
    const budget = new LogBudget(log);
    for (let n = 0; n < 1000; n++) budget.info({ code: 'AUTHN_FAILED' }, 'refused', 'AUTHN_FAILED');
    budget.info({ code: 'BACKEND_AUTH_FAILED' }, 'refused', 'BACKEND_AUTH_FAILED');
    expect(lines).toHaveLength(LOG_BURST + 1);
    expect(lines.at(-1)).toMatchObject({ code: 'BACKEND_AUTH_FAILED' });
    vi.advanceTimersByTime(LOG_WINDOW_MS);
    expect(lines.at(-1)).toMatchObject({ kind: 'AUTHN_FAILED', suppressed: 1000 - LOG_BURST });
    expect(lines).toHaveLength(LOG_BURST + 2);
  });

  it('spends nothing on a level not logged', () => {
    const { log, lines } = captured('warn');
    const budget = new LogBudget(log);
    for (let n = 0; n < 100; n++) budget.info({ n }, 'access denied');
    vi.advanceTimersByTime(LOG_WINDOW_MS);
    expect(lines).toHaveLength(0);
  });
});
