#!/usr/bin/env node
// `kubectl-db`: the kubectl plugin (`kubectl db ls|login|connect|proxy|logout`).
import { DrawbridgeError, errorMessage } from '../errors.js';
import { processIo } from './db/io.js';
import { kubectlDbProgram } from './db/program.js';

kubectlDbProgram(processIo)
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    const hint = err instanceof DrawbridgeError && err.hint ? `\n  ${err.hint}` : '';
    process.stderr.write(`error: ${errorMessage(err)}${hint}\n`);
    process.exit(1);
  });
