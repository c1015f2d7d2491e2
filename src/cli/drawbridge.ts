#!/usr/bin/env -S node --max-semi-space-size=2 --max-valid-polymorphic-map-count=8
// `drawbridge`: the agent, the controller and admin tools in one binary. The launcher line bounds V8's
// young generation (2 MB semi-spaces; V8's default grows them to 16 MB in a burst of handshakes and
// keeps them): an agent holds ~7 MB less at start and ~20 MB less with 1,000 idle sessions; only the
// Redis Cluster path measurably pays for it in CPU (README, Performance). Agent workers inherit it:
// node:cluster forks them with this process's options. `drawbridge agent --semi-space-mb N`
// (spec.agent.semiSpaceMB) runs the agent with another bound (cli/semi-space.ts).
// --max-valid-polymorphic-map-count=8: a session's sockets reach Node's stream code in more shapes than
// V8's default of 4, past which each property load there (every read and write) is a megamorphic one.
import { messageWithHint } from '../errors.js';
import { drawbridgeProgram } from './commands/program.js';

drawbridgeProgram()
  .parseAsync(process.argv)
  .catch((err: unknown) => {
    process.stderr.write(`drawbridge: ${messageWithHint(err)}\n`);
    process.exit(1);
  });
