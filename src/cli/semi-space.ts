// `drawbridge agent --semi-space-mb N`: V8 fixes the bounds of its young generation when Node starts, so
// an agent asked for another bound than the one it runs with replaces itself (execve: same pid, same
// arguments and environment) with Node started with `--max-semi-space-size=N`. Its workers inherit it
// (node:cluster forks them with the primary's options). Unasked, the launcher line's bound stands.
import cluster from 'node:cluster';
import { DrawbridgeError } from '../errors.js';

const FLAG = /^--max[-_]semi[-_]space[-_]size(?:=(.*))?$/;

/** The bound Node runs with, from its options (the last one wins, as in V8); undefined: V8's default. */
export function semiSpaceOf(execArgv: readonly string[]): number | undefined {
  let mb: number | undefined;
  for (let i = 0; i < execArgv.length; i++) {
    const m = FLAG.exec(execArgv[i]!);
    if (m) mb = Number(m[1] ?? execArgv[++i]);
  }
  return mb;
}

/** Node's options with `mb` as the bound, in place of any other. */
export function withSemiSpace(execArgv: readonly string[], mb: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < execArgv.length; i++) {
    const m = FLAG.exec(execArgv[i]!);
    if (!m) out.push(execArgv[i]!);
    else if (m[1] === undefined) i++;
  }
  return [...out, `--max-semi-space-size=${mb}`];
}

/** Returns when the process runs with `mb` (or none was asked for); otherwise never returns. */
export function ensureSemiSpace(mb: number | undefined): void {
  if (mb === undefined || !cluster.isPrimary || semiSpaceOf(process.execArgv) === mb) return;
  // Node 22.15+ (the image runs 24); @types/node here predates it.
  const { execve } = process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never };
  if (typeof execve !== 'function') {
    throw new DrawbridgeError(
      'INVALID_CONFIG',
      `--semi-space-mb needs Node 22.15 or later (this is ${process.version})`,
      `start it as node --max-semi-space-size=${mb} ${process.argv[1]} instead, without --semi-space-mb`,
    );
  }
  const args = [...withSemiSpace(process.execArgv, mb), ...process.argv.slice(1)];
  execve.call(process, process.execPath, [process.execPath, ...args], process.env);
}
