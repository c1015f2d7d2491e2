import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';

export function crdsCommand(): Command {
  return new Command('crds')
    .description('write the CustomResourceDefinitions generated from the API schemas')
    .option('--out <dir>', 'directory to write into (default: print to stdout)')
    .action(async (opts: { out?: string }) => {
      const { renderCrds } = await import('../../api/crds.js');
      const crds = renderCrds();
      if (!opts.out) {
        process.stdout.write([...crds.values()].join('---\n'));
        return;
      }
      await mkdir(opts.out, { recursive: true });
      for (const [file, text] of crds) await writeFile(join(opts.out, file), text);
    });
}
