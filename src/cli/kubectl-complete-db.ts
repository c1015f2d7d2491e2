#!/usr/bin/env node
// `kubectl_complete-db`: shell completion for the plugin. kubectl (1.26+) runs it with the words after
// `kubectl db`, the last one being the word under the cursor, and expects cobra's format: one candidate
// per line, then `:<directive>` (4: no file completion). Subcommands and flags come from the command
// tree itself; Database names from the API server, in the namespace and context the line names.
import type { Command } from 'commander';
import { errorMessage } from '../errors.js';
import { processIo } from './db/io.js';
import { type GlobalOptions, listObjects, loadTarget } from './db/kube.js';
import { printableLine } from './db/printable.js';
import { kubectlDbProgram } from './db/program.js';

const NO_FILE_COMP = 4;
/** Subcommands whose first argument is a Database name. */
const TAKES_DATABASE = new Set(['login', 'connect', 'proxy', 'env', 'config', 'logout']);

function flagsOf(cmd: Command): string[] {
  return cmd.options.flatMap((o) => [o.long, o.short].filter((f): f is string => !!f));
}

/** kubectl's own flags from the line, for the API call that lists Databases. */
function globals(words: string[]): GlobalOptions {
  const out: Record<string, string> = {};
  const names: Record<string, string> = {
    '-n': 'namespace',
    '--namespace': 'namespace',
    '--context': 'context',
    '--kubeconfig': 'kubeconfig',
  };
  words.forEach((w, i) => {
    const [flag, inline] = w.split('=', 2) as [string, string | undefined];
    const key = names[flag];
    if (key) out[key] = inline ?? words[i + 1] ?? '';
  });
  return out as GlobalOptions;
}

async function complete(words: string[]): Promise<string[]> {
  const program = kubectlDbProgram(processIo);
  const prefix = words.at(-1) ?? '';
  const before = words.slice(0, -1);
  const positional = before.filter(
    (w, i) =>
      !w.startsWith('-') && !['-n', '--namespace', '--context', '--kubeconfig'].includes(before[i - 1] ?? ''),
  );
  const sub = program.commands.find((c) => c.name() === positional[0]);
  if (prefix.startsWith('-'))
    return [...flagsOf(program), ...(sub ? flagsOf(sub) : [])].filter((f) => f.startsWith(prefix));
  if (!sub)
    return program.commands
      .map((c) => c.name())
      .filter((n) => n.startsWith(prefix))
      .sort();
  if (!TAKES_DATABASE.has(sub.name()) || positional.length > 1) return [];
  const target = loadTarget(globals(before));
  const items = (await listObjects(target.kc, 'databases', target.namespace)) as {
    metadata: { name: string };
  }[];
  return items
    .map((d) => d.metadata.name)
    .filter((n) => n.startsWith(prefix))
    .sort();
}

complete(process.argv.slice(2)).then(
  // Names from the API server reach the shell's completion menu: one line each, shown, not obeyed.
  (candidates) =>
    process.stdout.write([...candidates.map(printableLine), `:${NO_FILE_COMP}`].join('\n') + '\n'),
  (err: unknown) => {
    // Completion must never print an error into the shell line: no candidates, and why on stderr.
    process.stderr.write(`kubectl_complete-db: ${printableLine(errorMessage(err))}\n`);
    process.stdout.write(`:${NO_FILE_COMP}\n`);
  },
);
