/**
 * A real Kubernetes control plane for tests and demos: etcd + kube-apiserver (+ optionally
 * kube-controller-manager) on loopback, started the way controller-runtime's envtest starts one,
 * from the binaries test/k8s/build.sh caches.
 *
 * People authenticate with client certificates from a throw-away CA (CN = user, O = groups), so a
 * test can act as anyone and observe what the real server does with that identity: RBAC denials,
 * CertificateSigningRequest spec.username/groups, TokenRequest/TokenReview for ServiceAccounts.
 */
import { spawn, spawnSync } from 'node:child_process';
import { webcrypto } from 'node:crypto';
import { closeSync, existsSync, openSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { EC, issue, newCA, privatePem, publicPem, subjectFor, type CA, type Issued } from './pki.js';
import { freePort, withFreshPorts } from '../support/ports.js';
import { terminate } from '../support/terminate.js';
import { type Proc, get, logTail, reaper } from './procs.js';

export interface ControlPlaneOptions {
  /** Also run kube-controller-manager (garbage collection, namespace deletion, SA tokens). */
  controllerManager?: boolean;
  /** Controllers for kube-controller-manager; defaults to DEFAULT_CONTROLLERS. */
  controllers?: string[];
  /** Where the binaries are; defaults to $DRAWBRIDGE_K8S_BIN, then build.sh's cache dir. */
  binDir?: string;
  /** Extra kube-apiserver flags, e.g. ['--feature-gates=...']. */
  apiServerArgs?: string[];
  /** How long to wait for each component to become ready. */
  startTimeoutMs?: number;
}

export interface KubectlOptions {
  /** Act as someone else: a path from makeUserKubeconfig. Defaults to the admin kubeconfig. */
  kubeconfig?: string;
  /** Written to kubectl's stdin (for `apply -f -`). */
  input?: string;
}

export interface ControlPlane {
  /** https://127.0.0.1:PORT */
  readonly server: string;
  /** A cluster-admin kubeconfig (user "admin", group system:masters). */
  readonly kubeconfigPath: string;
  /** The CA that signed the serving certificate and every client certificate. */
  readonly caPem: string;
  /** Temporary directory holding certificates, kubeconfigs, etcd data and component logs. */
  readonly dir: string;
  readonly binDir: string;
  /** Writes a kubeconfig authenticating as `user` in `groups` (no RBAC granted) and returns its path. */
  makeUserKubeconfig(user: string, groups?: string[]): Promise<string>;
  /** Runs kubectl against this cluster; resolves to stdout, rejects with KubectlError. */
  kubectl(args: string[], opts?: KubectlOptions): Promise<string>;
  /**
   * Kills kube-apiserver (SIGKILL, as a crash: every connection drops) and starts it again on the same
   * port; resolves once /readyz is 200. Watches then see errors, refused connections, and 429s while
   * the new server's watch caches initialize: what a client must survive.
   */
  restartApiServer(): Promise<void>;
  /** Stops every process and removes `dir`. Safe to call more than once. */
  stop(): Promise<void>;
}

/**
 * Controllers worth having without nodes: owner-reference garbage collection, namespace deletion,
 * default ServiceAccounts, legacy SA token Secrets, kube-root-ca.crt and expired-CSR cleanup. The
 * CSR signing and approving controllers stay off: drawbridge.dev/database-client is ours to sign.
 */
export const DEFAULT_CONTROLLERS = [
  'garbagecollector',
  'namespace',
  'serviceaccount',
  'serviceaccount-token',
  'root-ca-cert-publisher',
  'csrcleaner',
];

export class KubectlError extends Error {
  constructor(
    readonly args: string[],
    readonly exitCode: number | null,
    readonly stderr: string,
  ) {
    super(`kubectl ${args.join(' ')} exited with ${exitCode}: ${stderr.trim()}`);
    this.name = 'KubectlError';
  }
}

const ISSUER = 'https://kubernetes.default.svc.cluster.local';
/** How long a control-plane process has to exit after SIGTERM before it is killed. */
const STOP_GRACE_MS = 10_000;

/** Locates the binaries without duplicating build.sh's version pins. */
export function k8sBinDir(): string {
  if (process.env.DRAWBRIDGE_K8S_BIN) return process.env.DRAWBRIDGE_K8S_BIN;
  const here = path.dirname(fileURLToPath(import.meta.url));
  // From source (test/k8s) or compiled (dist/test/k8s).
  for (const script of [path.join(here, 'build.sh'), path.join(here, '../../../test/k8s/build.sh')]) {
    if (!existsSync(script)) continue;
    const r = spawnSync('bash', [script, '--bin-dir'], { encoding: 'utf8' });
    if (r.status === 0) return r.stdout.trim();
  }
  throw new Error('cannot find test/k8s/build.sh; set DRAWBRIDGE_K8S_BIN to the directory of kube-apiserver');
}

export async function startControlPlane(opts: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binDir = opts.binDir ?? k8sBinDir();
  const wanted = ['etcd', 'kube-apiserver', 'kubectl'];
  if (opts.controllerManager) wanted.push('kube-controller-manager');
  for (const bin of wanted) {
    if (!existsSync(path.join(binDir, bin))) {
      throw new Error(`${bin} not found in ${binDir}: run \`make k8s-bin\` (test/k8s/build.sh) first`);
    }
  }
  // A port picked free can be taken before etcd or the apiserver binds it: both exit saying "address
  // already in use" (quoted from their log by waitFor), and the whole plane starts again on fresh ports.
  return withFreshPorts(async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-k8s-'));
    const plane = new RunningPlane(dir, binDir, opts.startTimeoutMs ?? 90_000);
    live.add(plane);
    try {
      await plane.start(opts);
    } catch (err) {
      await plane.stop();
      throw err;
    }
    return plane;
  });
}

// ---- processes ---------------------------------------------------------------------------------

const live = new Set<RunningPlane>();
// 'exit' handlers must be synchronous: kill hard and remove directories without awaiting.
process.on('exit', () => {
  for (const plane of live) plane.killNow();
});

class RunningPlane implements ControlPlane {
  server = '';
  kubeconfigPath = '';
  caPem = '';
  private ca: CA | undefined;
  private procs: Proc[] = [];
  private stopped = false;
  private users = 0;
  private apiServerArgs: string[] = [];
  private apiServerReady: () => Promise<boolean> = async () => false;

  constructor(
    readonly dir: string,
    readonly binDir: string,
    private readonly timeoutMs: number,
  ) {}

  async start(opts: ControlPlaneOptions): Promise<void> {
    const f = (name: string) => path.join(this.dir, name);
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    this.server = `https://127.0.0.1:${apiPort}`;

    this.ca = await newCA('drawbridge-test-ca');
    this.caPem = this.ca.certPem;
    const serving = await issue(this.ca, [{ CN: ['kube-apiserver'] }], 'server');
    const admin = await issue(this.ca, subjectFor('admin', ['system:masters']), 'client');
    const sa = await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify']);
    await writeFile(f('ca.crt'), this.caPem);
    await writeFile(f('apiserver.crt'), serving.certPem);
    await writeFile(f('apiserver.key'), serving.keyPem, { mode: 0o600 });
    await writeFile(f('sa.key'), await privatePem(sa.privateKey), { mode: 0o600 });
    await writeFile(f('sa.pub'), await publicPem(sa.publicKey));
    this.kubeconfigPath = f('admin.kubeconfig');
    await writeFile(this.kubeconfigPath, this.kubeconfig('admin', admin), { mode: 0o600 });

    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const etcd = this.spawn('etcd', [
      '--name=default',
      `--data-dir=${f('etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=default=${peerUrl}`,
      // Test data is disposable; fsync dominates etcd latency on a shared CI disk.
      '--unsafe-no-fsync',
      '--log-level=warn',
    ]);
    await this.waitFor(etcd, async () => (await get(`${etcdUrl}/health`)) === 200);

    this.apiServerArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${f('apiserver.crt')}`,
      `--tls-private-key-file=${f('apiserver.key')}`,
      `--client-ca-file=${f('ca.crt')}`,
      '--service-cluster-ip-range=10.0.0.0/24',
      `--service-account-issuer=${ISSUER}`,
      `--api-audiences=${ISSUER}`,
      `--service-account-key-file=${f('sa.pub')}`,
      `--service-account-signing-key-file=${f('sa.key')}`,
      '--authorization-mode=RBAC',
      '--allow-privileged=true',
      // No controller may have created the namespace's default ServiceAccount yet, and no kubelet
      // runs pods anyway: like envtest, do not make every Pod create depend on it.
      '--disable-admission-plugins=ServiceAccount',
      '--profiling=false',
      ...(opts.apiServerArgs ?? []),
    ];
    const apiserver = this.spawn('kube-apiserver', this.apiServerArgs);
    const tls = { ca: this.caPem, cert: admin.certPem, key: admin.keyPem };
    // /readyz includes the RBAC bootstrap-roles hook, so RBAC decisions are final once it is 200.
    this.apiServerReady = async () => (await get(`${this.server}/readyz`, tls)) === 200;
    await this.waitFor(apiserver, this.apiServerReady);

    if (opts.controllerManager) {
      const controllers = opts.controllers ?? DEFAULT_CONTROLLERS;
      // system:masters keeps the controllers' RBAC out of the way; real clusters use per-controller SAs.
      const kcm = await issue(
        this.ca,
        subjectFor('system:kube-controller-manager', ['system:masters']),
        'client',
      );
      await writeFile(f('kcm.kubeconfig'), this.kubeconfig('system:kube-controller-manager', kcm), {
        mode: 0o600,
      });
      const proc = this.spawn('kube-controller-manager', [
        `--kubeconfig=${f('kcm.kubeconfig')}`,
        `--controllers=${controllers.join(',')}`,
        '--leader-elect=false',
        '--secure-port=0',
        `--service-account-private-key-file=${f('sa.key')}`,
        `--root-ca-file=${f('ca.crt')}`,
      ]);
      // The default ServiceAccount appearing is the first visible proof the controllers are syncing.
      if (controllers.includes('serviceaccount')) {
        const url = `${this.server}/api/v1/namespaces/default/serviceaccounts/default`;
        await this.waitFor(proc, async () => (await get(url, tls)) === 200);
      }
    }
  }

  async makeUserKubeconfig(user: string, groups: string[] = []): Promise<string> {
    if (!this.ca) throw new Error('control plane not started');
    const creds = await issue(this.ca, subjectFor(user, groups), 'client');
    const dir = path.join(this.dir, 'users');
    await mkdir(dir, { recursive: true });
    const file = path.join(dir, `${++this.users}-${user.replace(/[^\w.-]/g, '_')}.kubeconfig`);
    await writeFile(file, this.kubeconfig(user, creds), { mode: 0o600 });
    return file;
  }

  kubectl(args: string[], opts: KubectlOptions = {}): Promise<string> {
    const full = [`--kubeconfig=${opts.kubeconfig ?? this.kubeconfigPath}`, ...args];
    return new Promise((resolve, reject) => {
      const child = spawn(path.join(this.binDir, 'kubectl'), full, { stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout.on('data', (b: Buffer) => out.push(b));
      child.stderr.on('data', (b: Buffer) => err.push(b));
      child.on('error', reject);
      child.on('close', (code) => {
        if (code === 0) resolve(Buffer.concat(out).toString());
        else reject(new KubectlError(args, code, Buffer.concat(err).toString()));
      });
      // kubectl may exit before reading stdin (`get` never does): EPIPE then is no error of ours;
      // the exit code above says how the command went.
      child.stdin.on('error', () => undefined);
      child.stdin.end(opts.input ?? '');
    });
  }

  async restartApiServer(): Promise<void> {
    const i = this.procs.findIndex((p) => p.name === 'kube-apiserver');
    const old = this.procs[i]!;
    if (!old.exited) {
      const gone = new Promise<void>((r) => old.child.once('exit', () => r()));
      old.child.kill('SIGKILL');
      await gone;
    }
    old.reaper?.kill('SIGKILL');
    const proc = this.spawn('kube-apiserver', this.apiServerArgs);
    // In place: stop() takes etcd first in the list and stops it last.
    this.procs.pop();
    this.procs[i] = proc;
    await this.waitFor(proc, this.apiServerReady);
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    // Controllers and the apiserver first so that neither logs a storm of etcd errors on the way down.
    const [etcd, ...rest] = this.procs;
    await Promise.all(rest.map((p) => terminate(p, STOP_GRACE_MS)));
    if (etcd) await terminate(etcd, STOP_GRACE_MS);
    for (const p of this.procs) p.reaper?.kill('SIGKILL');
    await rm(this.dir, { recursive: true, force: true });
    live.delete(this);
  }

  killNow(): void {
    for (const p of this.procs) {
      if (!p.exited) p.child.kill('SIGKILL');
      p.reaper?.kill('SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private spawn(name: string, args: string[]): Proc {
    const logPath = path.join(this.dir, `${name}.log`);
    const fd = openSync(logPath, 'a');
    // Logs go straight to a file: no pipes to drain, and a failed start can quote them.
    const child = spawn(path.join(this.binDir, name), args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const proc: Proc = { name, child, logPath, exited: false, reaper: reaper(child.pid, this.dir) };
    child.on('exit', () => (proc.exited = true));
    this.procs.push(proc);
    return proc;
  }

  /** Polls `ready` until it holds, failing early (with the log tail) if the process dies. */
  private async waitFor(proc: Proc, ready: () => Promise<boolean>): Promise<void> {
    const deadline = Date.now() + this.timeoutMs;
    while (Date.now() < deadline) {
      if (proc.exited) throw new Error(`${proc.name} exited during start-up:\n${logTail(proc.logPath)}`);
      if (await ready().catch(() => false)) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`${proc.name} not ready after ${this.timeoutMs} ms:\n${logTail(proc.logPath)}`);
  }

  private kubeconfig(user: string, creds: Issued): string {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    return stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        {
          name: 'drawbridge-test',
          cluster: { server: this.server, 'certificate-authority-data': b64(this.caPem) },
        },
      ],
      users: [
        {
          name: user,
          user: { 'client-certificate-data': b64(creds.certPem), 'client-key-data': b64(creds.keyPem) },
        },
      ],
      contexts: [{ name: user, context: { cluster: 'drawbridge-test', user, namespace: 'default' } }],
      'current-context': user,
    });
  }
}
