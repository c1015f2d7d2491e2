import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';

export function crdsCommand(): Command {
  return new Command('crds')
    .description('write the CustomResourceDefinitions generated from the API schemas')
    .option('--out <dir>', 'directory to write into (default: print to stdout)')
    .option(
      '--helm-out <dir>',
      'also write them as Helm chart templates (crds.enabled, crds.keep) into this directory',
    )
    .action(async (opts: { out?: string; helmOut?: string }) => {
      const { renderCrds } = await import('../../api/crds.js');
      const crds = renderCrds();
      if (!opts.out && !opts.helmOut) {
        process.stdout.write([...crds.values()].join('---\n'));
        return;
      }
      if (opts.out) await writeAll(opts.out, crds);
      if (opts.helmOut) {
        const { helmCrdTemplates } = await import('../../api/crds-helm.js');
        await writeAll(opts.helmOut, helmCrdTemplates(crds));
      }
    });
}

/** Writes exactly these files as the directory's YAML: a kind that is gone must not linger. */
async function writeAll(dir: string, files: Map<string, string>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const old of await readdir(dir))
    if (old.endsWith('.yaml') && !files.has(old)) await rm(join(dir, old));
  for (const [file, text] of files) await writeFile(join(dir, file), text);
}
