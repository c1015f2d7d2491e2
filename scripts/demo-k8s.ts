// `make demo-k8s`: the whole flow on a local control plane. A real kube-apiserver + etcd (test/k8s),
// the CRDs, `drawbridge controller` as a process, the test node agent running the controller's agent
// Deployment as a `drawbridge agent` process, PostgreSQL 15, and `kubectl db` run by the real kubectl
// as alice (allowed) and mallory (denied). Everything started here is stopped on the way out.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { stringify } from 'yaml';
import { agentName } from '../src/operator/names.js';
import { startControlPlane } from '../test/k8s/controlplane.js';
import { startNodeAgent } from '../test/k8s/node-agent.js';
import { startPostgres } from '../test/support/postgres.js';

const API = 'drawbridge.dev/v1alpha1';
const CONTROLLER_NS = 'drawbridge'; // where kubectl db looks for the CA by default
const NS = 'shop';
const DB = 'orders';
const ROOT = path.resolve(import.meta.dirname, '../..');
const CLI = path.join(ROOT, 'dist/src/cli/drawbridge.js');
const PLUGIN = path.join(ROOT, 'dist/src/cli/kubectl-db.js');
const cleanups: (() => Promise<unknown> | unknown)[] = [];
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);

function step(title: string): void {
  console.log(`\n${bold(`▶ ${title}`)}`);
}

const indent = (s: string) => s.trimEnd().replace(/^/gm, '  ');

/** Runs a command without blocking this process (the node agent lives here); resolves to its output. */
function run(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, maxBuffer: 16 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolve({ code, out: stdout + stderr });
    });
  });
}

/** Shows a command line and its output, as a person would see them. */
async function show(shown: string, cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<number> {
  console.log(`$ ${shown}`);
  const { code, out } = await run(cmd, args, env);
  if (out.trim()) console.log(indent(out));
  return code;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(250);
  }
}

function stopProcess(child: ChildProcess): Promise<unknown> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((r) => (child.once('exit', r), child.kill('SIGTERM')));
}

function objects(pg: { port: number; ca: { certPem: string } }): { shown: object[]; hidden: object[] } {
  const metadata = (name: string, extra: object = {}) => ({ name, namespace: NS, ...extra });
  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: metadata('orders-passwords'),
    stringData: { app_ro: 'app-ro-password' },
  };
  const caSecret = { apiVersion: 'v1', kind: 'Secret', metadata: metadata('orders-ca'), stringData: {} };
  const database = {
    apiVersion: API,
    kind: 'Database',
    metadata: metadata(DB, { labels: { env: 'prod', team: 'orders' } }),
    spec: {
      protocol: 'postgres',
      uri: `postgres://127.0.0.1:${pg.port}/orders`,
      tls: {
        mode: 'verify-full',
        caSecretRef: { name: 'orders-ca', key: 'ca.crt' },
        serverName: 'localhost',
      },
      auth: { type: 'password', secretRef: { name: 'orders-passwords' } },
    },
  };
  const role = {
    apiVersion: API,
    kind: 'AccessRole',
    metadata: metadata('orders-readonly'),
    spec: {
      allow: { databaseLabels: { team: 'orders' }, databaseUsers: ['app_ro'], databaseNames: ['orders'] },
      options: { maxSessionTTL: '1h' },
    },
  };
  const user = {
    apiVersion: API,
    kind: 'DatabaseUser',
    metadata: metadata('alice'),
    spec: { subjects: [{ kind: 'User', name: 'alice' }], roles: ['orders-readonly'] },
  };
  return {
    shown: [secret, database, role, user],
    hidden: [{ ...caSecret, stringData: { 'ca.crt': pg.ca.certPem } }],
  };
}

async function main(): Promise<void> {
  const home = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-demo-k8s-'));
  cleanups.push(() => rm(home, { recursive: true, force: true }));

  step('A local control plane: etcd + kube-apiserver + kube-controller-manager (test/k8s)');
  const plane = await startControlPlane({ controllerManager: true });
  cleanups.push(() => plane.stop());
  const kubectl = path.join(plane.binDir, 'kubectl');
  const admin = { ...process.env, KUBECONFIG: plane.kubeconfigPath };
  console.log(`  ${plane.server}`);

  step('The Drawbridge CRDs, namespaces, and what people in group "dev" may do (the chart\'s user RBAC)');
  await show('kubectl apply -f crds/', kubectl, ['apply', '-f', path.join(ROOT, 'crds')], admin);
  for (const ns of [CONTROLLER_NS, NS]) await plane.kubectl(['create', 'namespace', ns]);
  const rbac = await run(
    path.join(plane.binDir, 'helm'),
    [
      'template',
      'drawbridge',
      path.join(ROOT, 'charts/drawbridge'),
      '-n',
      CONTROLLER_NS,
      '--show-only',
      'templates/rbac-users.yaml',
      '--set',
      'users.groups={dev}',
    ],
    { ...admin, HELM_CACHE_HOME: path.join(home, 'helm') },
  );
  if (rbac.code !== 0) throw new Error(`helm template failed: ${rbac.out}`);
  console.log(
    `$ helm template charts/drawbridge --show-only templates/rbac-users.yaml --set users.groups={dev} | kubectl apply -f -`,
  );
  console.log(indent(await plane.kubectl(['apply', '-n', CONTROLLER_NS, '-f', '-'], { input: rbac.out })));

  step(
    'drawbridge controller (a process, as in its Deployment) and a stand-in kubelet for agent Deployments',
  );
  const controllerLog = path.join(home, 'controller.log');
  const fd = openSync(controllerLog, 'a');
  const controller = spawn(
    process.execPath,
    [
      CLI,
      'controller',
      `--kubeconfig=${plane.kubeconfigPath}`,
      `--namespace=${CONTROLLER_NS}`,
      '--identity=demo',
      '--agent-image=drawbridge:demo',
      // The first backend probe decides Ready; the 60s default would keep the demo waiting.
      '--health-interval=5s',
    ],
    { stdio: ['ignore', fd, fd], env: { ...process.env, DRAWBRIDGE_LOG_LEVEL: 'info' } },
  );
  closeSync(fd);
  cleanups.push(() => stopProcess(controller));
  const nodeAgent = await startNodeAgent({ kubeconfigPath: plane.kubeconfigPath });
  cleanups.push(() => nodeAgent.stop());
  console.log(`  controller log: ${controllerLog}`);

  step('PostgreSQL 15 (SCRAM + TLS) with a read-only role app_ro');
  const pg = await startPostgres({
    databases: ['orders'],
    roles: [{ name: 'app_ro', password: 'app-ro-password' }],
  });
  cleanups.push(() => pg.stop());
  await pg.admin(
    'CREATE TABLE items(id int, name text); INSERT INTO items VALUES (1, $$widget$$), (2, $$gadget$$); GRANT SELECT ON items TO app_ro;',
    'orders',
  );
  console.log(`  127.0.0.1:${pg.port}`);

  step('A Secret, a Database, an AccessRole and a DatabaseUser for alice');
  const { shown, hidden } = objects(pg);
  const yaml = shown.map((o) => stringify(o)).join('---\n');
  console.log(indent(yaml.replace('app-ro-password', '<redacted>')));
  console.log(`$ kubectl apply -f -   # the above, plus Secret orders-ca (the PostgreSQL CA certificate)`);
  const applied = await plane.kubectl(['apply', '-f', '-'], {
    input: [...shown, ...hidden].map((o) => stringify(o)).join('---\n'),
  });
  console.log(indent(applied));

  step('The controller creates the agent; the Database becomes Ready');
  const endpoint = await nodeAgent.waitForEndpoint(NS, agentName(DB), 120_000);
  await until(`Database ${NS}/${DB} Ready`, async () => {
    const out = await plane.kubectl([
      'get',
      'database',
      DB,
      '-n',
      NS,
      '-o',
      'jsonpath={.status.conditions[?(@.type=="Ready")].status}',
    ]);
    return out === 'True' ? true : undefined;
  });
  await show(`kubectl get databases -n ${NS}`, kubectl, ['get', 'databases', '-n', NS], admin);
  console.log(`  the agent listens on ${endpoint} (what a Service would front in a real cluster)`);

  const pluginDir = path.join(home, 'bin');
  await mkdir(pluginDir);
  await writeFile(
    path.join(pluginDir, 'kubectl-db'),
    `#!/bin/sh\nexec "${process.execPath}" "${PLUGIN}" "$@"\n`,
  );
  await chmod(path.join(pluginDir, 'kubectl-db'), 0o755);
  const as = async (user: string) => ({
    ...process.env,
    KUBECONFIG: await plane.makeUserKubeconfig(user, ['dev']),
    DRAWBRIDGE_HOME: home,
    PGCONNECT_TIMEOUT: '10',
    PATH: `${pluginDir}:${path.dirname(process.execPath)}:${process.env.PATH}`,
  });
  const alice = await as('alice');
  const mallory = await as('mallory');
  const db = (env: NodeJS.ProcessEnv, args: string[]) => run(kubectl, ['db', '-n', NS, ...args], env);
  const showDb = async (who: string, env: NodeJS.ProcessEnv, args: string[], shownArgs = args.join(' ')) => {
    console.log(`${who}$ kubectl db -n ${NS} ${shownArgs}`);
    const { code, out } = await db(env, args);
    if (out.trim()) console.log(indent(out));
    return code;
  };

  step('alice (group dev) sees what she may reach, logs in through a CSR the controller signs, runs psql');
  await showDb('alice', alice, ['ls']);
  if ((await showDb('alice', alice, ['login', DB, '--db-user', 'app_ro', '--ttl', '30m'])) !== 0)
    throw new Error('alice could not log in');
  const connect = [
    'connect',
    DB,
    '--endpoint',
    endpoint,
    '--',
    '-X',
    '-c',
    'select current_user, count(*) as items from items',
  ];
  if (
    (await showDb(
      'alice',
      alice,
      connect,
      `connect ${DB} --endpoint ${endpoint} -- -c "select current_user, count(*) as items from items"`,
    )) !== 0
  )
    throw new Error('alice could not connect');
  await showDb('alice', alice, ['ls']);

  step('mallory (also group dev, but no DatabaseUser binds her) is denied, with the reason');
  if ((await showDb('mallory', mallory, ['login', DB, '--db-user', 'app_ro', '--timeout', '60s'])) === 0)
    throw new Error('mallory was not denied');

  await sleep(300);
  step("The agent audit log (JSON lines on the agent process's stdout; kubectl logs in a real cluster)");
  for (const file of nodeAgent.logs(NS, agentName(DB))) {
    const events = (await readFile(file, 'utf8'))
      .split('\n')
      .filter((l) => l.startsWith('{"') && l.includes('"type":"'));
    console.log(`  ${file} (${events.length} audit events; removed on exit), e.g.:`);
    for (const l of events.filter((e) => /"type":"(session\.start|query)"/.test(e)).slice(0, 3))
      console.log(`    ${l.slice(0, 240)}`);
  }
}

let stopping: Promise<void> | undefined;

/** Runs once: Ctrl+C during the final stop waits for that stop instead of starting a second one. */
function cleanup(): Promise<void> {
  stopping ??= (async () => {
    for (const fn of cleanups.reverse()) await Promise.resolve(fn()).catch(() => undefined);
  })();
  return stopping;
}

process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
main()
  .then(async () => {
    step('Stopping everything (agent, controller, control plane, PostgreSQL)');
    await cleanup();
  })
  .catch(async (err: unknown) => {
    console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
    await cleanup();
    process.exit(1);
  });
