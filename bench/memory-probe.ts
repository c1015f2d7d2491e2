// Loaded with `--import` into the processes the benches measure for idle memory (the agent, the bare
// Node pipe): on SIGUSR2 the process writes its process.memoryUsage() to a file named by its pid
// (memoryProbeFile in bench/idle-memory.ts), so the bench can say where the bytes are — V8's heap,
// memory outside it (external, of which ArrayBuffers), and the rest of RSS (code, OpenSSL, malloc).
import { renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

process.on('SIGUSR2', () => {
  const file = path.join(os.tmpdir(), `drawbridge-memory-${process.pid}.json`);
  // Renamed into place: the bench never reads half a file.
  writeFileSync(`${file}.tmp`, JSON.stringify(process.memoryUsage()));
  renameSync(`${file}.tmp`, file);
});
