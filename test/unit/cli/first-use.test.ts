// What a person meets first with `drawbridge` and `kubectl db`: --version, and flag values that are
// wrong in ways that used to run on (a --timeout of 0, a config and a Database at once) or fail far
// from the cause (no kubeconfig at all, an audit directory that does not exist).
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { type Command, CommanderError } from 'commander';
import { describe, expect, it } from 'vitest';
import { loadConfigFile } from '../../../src/api/config.js';
import { checkAuditPath } from '../../../src/agent/config-file.js';
import { VERSION } from '../../../src/build-info.js';
import { loadKubeConfigInto } from '../../../src/cli/args.js';
import { drawbridgeProgram } from '../../../src/cli/commands/program.js';
import { kubectlDbProgram } from '../../../src/cli/db/program.js';
import { DrawbridgeError, messageWithHint } from '../../../src/errors.js';

/** Parses `args` with `program`, never exiting: resolves to what it printed and the error it stopped with. */
async function run(program: Command, args: string[]): Promise<{ out: string; err?: CommanderError }> {
  let out = '';
  const quiet = (c: Command): void => {
    c.exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
    c.commands.forEach(quiet);
  };
  quiet(program);
  try {
    await program.parseAsync(args, { from: 'user' });
    return { out };
  } catch (err) {
    if (err instanceof CommanderError) return { out, err };
    throw err;
  }
}

const kubectlDb = () => kubectlDbProgram({ out: () => undefined, err: () => undefined, errIsTTY: false });
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'drawbridge-first-use-'));

describe('drawbridge', () => {
  it('--version prints the package version', async () => {
    const r = await run(drawbridgeProgram(), ['--version']);
    expect(r.err?.code).toBe('commander.version');
    expect(r.out.trim()).toBe(VERSION);
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('agent refuses --config with --database, naming both', async () => {
    const r = await run(drawbridgeProgram(), ['agent', '--config', 'a.yaml', '--database', 'shop/orders']);
    expect(r.err?.code).toBe('commander.conflictingOption');
    expect(r.out).toMatch(/--config <file>.*cannot be used with.*--database/);
  });

  it('agent refuses a --database that is not NAMESPACE/NAME', async () => {
    const r = await run(drawbridgeProgram(), ['agent', '--database', 'orders']);
    expect(r.err?.code).toBe('commander.invalidArgument');
    expect(r.out).toContain('must be NAMESPACE/NAME of a Database, e.g. shop/orders');
  });

  it('agent --help shows an example for each mode', async () => {
    const r = await run(drawbridgeProgram(), ['agent', '--help']);
    expect(r.out).toContain('drawbridge agent --config agent.yaml');
    expect(r.out).toContain('drawbridge agent --database shop/orders');
  });

  it.each(['abc', '0s', '60'])('controller refuses --health-interval %s', async (value) => {
    const r = await run(drawbridgeProgram(), ['controller', '--health-interval', value]);
    expect(r.err?.code).toBe('commander.invalidArgument');
    expect(r.out).toContain('use a duration of at least 1s');
  });

  it.each(['abc', '0s', '60'])(
    'ca rotate refuses --timeout %s before asking the controller anything',
    async (value) => {
      const r = await run(drawbridgeProgram(), ['ca', 'rotate', 'init', '--timeout', value]);
      expect(r.err?.code).toBe('commander.invalidArgument');
      expect(r.out).toContain('use a duration of at least 1s');
    },
  );

  it.each([
    ['ca', 'status', '--help'],
    ['controller', '--help'],
  ])('%s %s looks for the controller where kubectl db login does', async (...args) => {
    const r = await run(drawbridgeProgram(), args);
    // Up to the next option: --agent-command's default is "drawbridge" too.
    expect(r.out).toMatch(/--namespace <ns>(?:(?!\n\s+--)[^])*\(default: "drawbridge"\)/);
  });
});

describe('kubectl db', () => {
  it('--help ends with examples of the first commands a person runs', async () => {
    const r = await run(kubectlDb(), ['--help']);
    expect(r.out).toContain('kubectl db -n shop login orders --db-user app');
    expect(r.out).toContain("kubectl db -n shop connect orders -- -c 'select 1'");
  });
});

describe('kubectl db login', () => {
  it.each(['abc', '120', '0s'])('refuses --timeout %s instead of giving up at once', async (value) => {
    const r = await run(kubectlDb(), ['login', 'orders', '--db-user', 'app', '--timeout', value]);
    expect(r.err?.code).toBe('commander.invalidArgument');
    expect(r.out).toContain('use a duration of at least 1s, such as 30s, 2m or 1h30m');
  });

  it('shows the default --timeout as a duration', async () => {
    const r = await run(kubectlDb(), ['login', '--help']);
    expect(r.out).toMatch(/--timeout <duration>\s+how long to wait for approval \(default:\s+2m\)/);
  });
});

describe('the kubeconfig', () => {
  it('none at all is an error naming --kubeconfig and KUBECONFIG, not a request to localhost:8080', () => {
    const home = tmp();
    const kc = new k8s.KubeConfig();
    const load = () => loadKubeConfigInto(kc, undefined, { HOME: home });
    expect(load).toThrow(DrawbridgeError);
    expect(load).toThrow(`no kubeconfig: $KUBECONFIG is unset and ${home}/.kube/config does not exist`);
    try {
      load();
    } catch (err) {
      expect(messageWithHint(err)).toContain('fix: pass --kubeconfig FILE or set KUBECONFIG');
    }
  });

  it('~/.kube/config is loaded when it exists', () => {
    const home = tmp();
    mkdirSync(path.join(home, '.kube'));
    writeFileSync(
      path.join(home, '.kube', 'config'),
      [
        'apiVersion: v1',
        'kind: Config',
        'clusters: [{ name: c, cluster: { server: "https://10.0.0.1:6443" } }]',
        'users: [{ name: u, user: { token: t } }]',
        'contexts: [{ name: x, context: { cluster: c, user: u } }]',
        'current-context: x',
      ].join('\n'),
    );
    const kc = new k8s.KubeConfig();
    const saved = { HOME: process.env.HOME, KUBECONFIG: process.env.KUBECONFIG };
    process.env.HOME = home; // client-node reads the environment itself
    delete process.env.KUBECONFIG;
    try {
      loadKubeConfigInto(kc, undefined, { HOME: home });
    } finally {
      Object.assign(process.env, saved);
      if (saved.KUBECONFIG === undefined) delete process.env.KUBECONFIG;
    }
    expect(kc.getCurrentCluster()?.server).toBe('https://10.0.0.1:6443');
  });
});

describe('the standalone agent file', () => {
  it('a --config that cannot be read says which and what to pass', async () => {
    const file = path.join(tmp(), 'agent.yaml');
    const err = await loadConfigFile(file).catch((e: unknown) => e);
    expect(messageWithHint(err)).toBe(
      `${file}: cannot read it (ENOENT)\n  fix: pass --config the YAML file holding the AgentConfig and the documents it uses`,
    );
  });

  it('an audit path in a missing directory stops the start, naming mkdir -p', () => {
    const dir = path.join(tmp(), 'log', 'drawbridge');
    let err: unknown;
    try {
      checkAuditPath(path.join(dir, 'audit.jsonl'), 'agent.yaml');
    } catch (e) {
      err = e;
    }
    expect(messageWithHint(err)).toBe(
      `agent.yaml: spec.audit.path ${dir}/audit.jsonl: cannot open it to append (ENOENT)\n` +
        `  fix: create its directory (mkdir -p ${dir}), or set spec.audit.path to another file ("-" for stdout)`,
    );
  });

  it('a writable file, stdout and a FIFO nobody reads yet pass (the FIFO is not opened)', () => {
    const dir = tmp();
    const file = path.join(dir, 'audit.jsonl');
    checkAuditPath(file, 'agent.yaml');
    checkAuditPath('-', 'agent.yaml');
    const fifo = path.join(dir, 'audit.fifo');
    execFileSync('mkfifo', [fifo]);
    checkAuditPath(fifo, 'agent.yaml');
  });
});
