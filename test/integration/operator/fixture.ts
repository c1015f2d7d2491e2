// The operator end to end with real parts: kube-apiserver + etcd (test/k8s), the CRDs from crds/,
// `drawbridge controller` as separate processes (two replicas, leader-elected), the test node agent
// running agent Deployments as `drawbridge agent --database ...` processes, and PostgreSQL 15.
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { stringify } from 'yaml';
import { type ControlPlane, startControlPlane } from '../../k8s/controlplane.js';
import { type NodeAgent, startNodeAgent } from '../../k8s/node-agent.js';

export const CONTROLLER_NS = 'drawbridge-system';
const CLI = path.resolve('dist/src/cli/drawbridge.js');

export interface ControllerProcess {
  identity: string;
  child: ChildProcess;
  logPath: string;
  exited: boolean;
}

export interface OperatorEnv {
  plane: ControlPlane;
  nodeAgent: NodeAgent;
  controllers: ControllerProcess[];
  /** `kubectl apply -f -` of plain objects, as admin unless `kubeconfig` is given. */
  apply(objects: object[], kubeconfig?: string): Promise<string>;
  /** `kubectl get -o json`; undefined when the object does not exist. */
  get<T = Record<string, unknown>>(kind: string, name: string, namespace?: string): Promise<T | undefined>;
  /** Starts one more controller replica, with extra flags and environment if given. */
  startController(
    identity: string,
    extra?: { args?: string[]; env?: Record<string, string> },
  ): ControllerProcess;
  stop(): Promise<void>;
}

/** `kubectl get events` in `namespace` matching `fieldSelector`, printed as `output` (-o). */
export function eventsOf(
  env: OperatorEnv,
  namespace: string,
  fieldSelector: string,
  output = 'json',
): Promise<string> {
  return env.plane.kubectl([
    'get',
    'events',
    '-n',
    namespace,
    '--field-selector',
    fieldSelector,
    '-o',
    output,
  ]);
}

export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`${what}: not within ${timeoutMs} ms${last ? ` (${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

export async function startOperatorEnv(opts: {
  controllers: number;
  namespaces: string[];
  /** Run agent Deployments as processes (default true); tests of the controller alone skip it. */
  nodeAgent?: boolean;
  /** Extra kube-apiserver flags (e.g. an audit log). */
  apiServerArgs?: string[];
}): Promise<OperatorEnv> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`make build\` first`);
  const plane = await startControlPlane({ apiServerArgs: opts.apiServerArgs });
  const controllers: ControllerProcess[] = [];
  let nodeAgent: NodeAgent | undefined;
  const env: OperatorEnv = {
    plane,
    get nodeAgent() {
      return nodeAgent!;
    },
    controllers,
    apply: (objects, kubeconfig) =>
      plane.kubectl(['apply', '-f', '-'], {
        input: objects.map((o) => stringify(o)).join('---\n'),
        kubeconfig,
      }),
    async get<T>(kind: string, name: string, namespace?: string) {
      const ns = namespace ? ['-n', namespace] : [];
      const out = await plane.kubectl([
        'get',
        kind,
        name,
        ...ns,
        '-o',
        'json',
        '--ignore-not-found',
        '--show-managed-fields',
      ]);
      return out.trim() ? (JSON.parse(out) as T) : undefined;
    },
    startController(identity, extra = {}) {
      const logPath = path.join(plane.dir, `controller-${identity}.log`);
      const fd = openSync(logPath, 'a');
      const child = spawn(
        process.execPath,
        [
          CLI,
          'controller',
          `--kubeconfig=${plane.kubeconfigPath}`,
          `--namespace=${CONTROLLER_NS}`,
          `--identity=${identity}`,
          '--agent-image=drawbridge:test',
          '--health-interval=3s',
          '--workers=4',
          ...(extra.args ?? []),
        ],
        { stdio: ['ignore', fd, fd], env: { ...process.env, DRAWBRIDGE_LOG_LEVEL: 'info', ...extra.env } },
      );
      closeSync(fd);
      const proc: ControllerProcess = { identity, child, logPath, exited: false };
      child.on('exit', () => (proc.exited = true));
      controllers.push(proc);
      return proc;
    },
    async stop() {
      await nodeAgent?.stop();
      await Promise.all(
        controllers.map(async (c) => {
          if (c.exited) return;
          const gone = new Promise((r) => c.child.once('exit', r));
          c.child.kill('SIGTERM');
          await gone;
        }),
      );
      await plane.stop();
    },
  };
  try {
    await plane.kubectl(['apply', '-f', path.resolve('crds')]);
    for (const ns of [CONTROLLER_NS, ...opts.namespaces]) await plane.kubectl(['create', 'namespace', ns]);
    // People may create CSRs (what `kubectl db login` needs); nothing else.
    await env.apply([
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'csr-requester' },
        rules: [
          {
            apiGroups: ['certificates.k8s.io'],
            resources: ['certificatesigningrequests'],
            verbs: ['create', 'get', 'list', 'watch'],
          },
        ],
      },
      {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'csr-requester' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'csr-requester' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'Group', name: 'system:authenticated' }],
      },
    ]);
    for (let i = 0; i < opts.controllers; i++) env.startController(`controller-${i}`);
    if (opts.nodeAgent !== false) nodeAgent = await startNodeAgent({ kubeconfigPath: plane.kubeconfigPath });
  } catch (err) {
    await env.stop();
    throw err;
  }
  return env;
}

export function logOf(c: ControllerProcess): string {
  return readFileSync(c.logPath, 'utf8').split('\n').slice(-30).join('\n');
}
