// Stopping a child process a test started: SIGTERM, and SIGKILL if it is still there after a grace.
import type { ChildProcess } from 'node:child_process';

/** A child process and whether it has exited (its owner's 'exit' listener sets `exited`). */
export interface Stoppable {
  readonly child: ChildProcess;
  readonly exited: boolean;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process has exited. */
export async function terminate(p: Stoppable, graceMs: number): Promise<void> {
  if (p.exited) return;
  const gone = new Promise<void>((resolve) => p.child.once('exit', () => resolve()));
  p.child.kill('SIGTERM');
  const timer = setTimeout(() => p.child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}
