/**
 * Keeps a script that started servers running until it is told to stop — Ctrl+C, SIGTERM, SIGHUP, and
 * with `untilStdinEnds` its stdin closing (so a bench script holding a fifo open takes it down when it
 * exits, however it exits) — then runs `stop` once and exits 0.
 */
export function serveUntilStopped(stop: () => Promise<void>, opts: { untilStdinEnds?: boolean } = {}): void {
  let stopping = false;
  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    await stop();
    process.exit(0);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void shutdown());
  if (opts.untilStdinEnds) {
    process.stdin.on('end', () => void shutdown());
    process.stdin.resume();
  }
}
