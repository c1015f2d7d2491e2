#!/usr/bin/env node
// `kubectl-db`: the kubectl plugin (`kubectl db ls|login|connect|proxy|logout`).
import { processIo } from './db/io.js';
import { errorReport, kubectlDbProgram } from './db/program.js';

kubectlDbProgram(processIo)
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(errorReport(err));
    process.exit(1);
  });
