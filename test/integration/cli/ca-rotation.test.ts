/**
 * Rotating the Drawbridge CA with the real controller, agents (the node agent runs them, rolling them as
 * a kubelet would) and `kubectl db login`: init trusts a new CA next to the old one, update makes it sign
 * logins and agent certificates while the old CA's certificates keep working, standby drops the old CA,
 * after which a certificate it issued is refused with what to do. Each step is the annotation a platform
 * engineer sets, with `drawbridge ca rotate` (init, update) or kubectl (standby).
 */
import { execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { cp, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentName, agentTlsSecretName } from '../../../src/operator/names.js';
import { PG_BIN } from '../../support/postgres.js';
import { CONTROLLER_NS, type CliFixture, DB, NS, type RunResult, startCliFixture } from './fixture.js';

let f: CliFixture;
let saved: string;
const oldCA = () => new X509Certificate(f.caPem);

beforeAll(async () => {
  f = await startCliFixture();
  saved = await mkdtemp(path.join(os.tmpdir(), 'ca-rotation-'));
}, 240_000);

afterAll(async () => {
  await f?.stop();
  if (saved) await rm(saved, { recursive: true, force: true });
});

const CA_PEM = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;
const certs = (bundle: string) => (bundle.match(CA_PEM) ?? []).map((p) => new X509Certificate(p));
const signedBy = (cert: X509Certificate, ca: X509Certificate) =>
  cert.checkIssued(ca) && cert.verify(ca.publicKey);

async function eventually<T>(what: string, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 90_000;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`${what}: not within 90 s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

const getJson = async <T>(...args: string[]) =>
  JSON.parse(await f.plane.kubectl([...args, '-o', 'json'])) as T;
type Obj = { metadata: { annotations?: Record<string, string> }; data?: Record<string, string> };

const request = (phase: string) =>
  f.plane.kubectl([
    '-n',
    CONTROLLER_NS,
    'annotate',
    '--overwrite',
    'secret',
    'drawbridge-ca',
    `drawbridge.dev/ca-rotation=${phase}`,
  ]);

/** `drawbridge ca ARGS` as the cluster admin. */
function drawbridgeCa(...args: string[]): Promise<RunResult> {
  const cli = path.resolve('dist/src/cli/drawbridge.js');
  const argv = [cli, 'ca', ...args, '--namespace', CONTROLLER_NS, '--kubeconfig', f.plane.kubeconfigPath];
  return new Promise((resolve) =>
    execFile(process.execPath, argv, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** The ConfigMap once the controller reports `phase`: its bundle and message. */
function published(phase: string): Promise<{ bundle: string; message: string }> {
  return eventually(`phase ${phase}`, async () => {
    const cm = await getJson<Obj>('-n', CONTROLLER_NS, 'get', 'configmap', 'drawbridge-ca');
    const a = cm.metadata.annotations ?? {};
    if (a['drawbridge.dev/ca-rotation-phase'] !== phase) return undefined;
    return { bundle: cm.data!['ca.crt']!, message: a['drawbridge.dev/ca-rotation-message']! };
  });
}

/** Waits for the agent's TLS Secret to be `ready`, then for its pod to roll (a new address) and serve. */
async function rolled(previous: string, ready: (data: Record<string, string>) => boolean): Promise<string> {
  await eventually('the agent TLS Secret', async () => {
    const s = await getJson<Obj>('-n', NS, 'get', 'secret', agentTlsSecretName(DB));
    const data = Object.fromEntries(
      Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
    );
    return ready(data) || undefined;
  });
  return eventually('the agent rolled', async () => {
    const now = await f.agentNow(DB);
    return now !== previous ? now : undefined;
  });
}

/** alice's login now, copied aside under `name` (the next login overwrites it). */
async function login(name: string): Promise<{ dir: string; cert: X509Certificate }> {
  const r = await f.kubectlDb(f.kubeconfigs.alice, [
    '-n',
    NS,
    'login',
    DB,
    '--db-user',
    'alice',
    '--timeout',
    '60s',
  ]);
  expect(r.stderr, r.stderr).not.toMatch(/^error:/m);
  expect(r.code).toBe(0);
  const dir = path.join(saved, name);
  await cp(path.join(f.home, 'alice', NS, DB), dir, { recursive: true });
  return { dir, cert: new X509Certificate(await readFile(path.join(dir, 'tls.crt'))) };
}

/** psql with a saved login, verifying the agent as kubectl db connect does. */
function psql(dir: string, endpoint: string): Promise<RunResult> {
  const [host, port] = endpoint.split(':');
  const conninfo = [
    `host=${agentName(DB)}.${NS}.svc hostaddr=${host} port=${port} user=alice dbname=orders sslmode=verify-full`,
    `sslcert=${dir}/tls.crt sslkey=${dir}/tls.key sslrootcert=${dir}/ca.crt`,
  ].join(' ');
  return new Promise((resolve) => {
    const child = spawn(path.join(PG_BIN, 'psql'), [conninfo, '-X', '-Atc', 'select current_user'], {
      env: { ...process.env, PGCONNECT_TIMEOUT: '10' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const works = async (dir: string, endpoint: string) => {
  const r = await psql(dir, endpoint);
  expect(r.stderr).toBe('');
  expect(r.stdout.trim()).toBe('alice');
};

async function events(reason: string): Promise<string[]> {
  const list = await getJson<{ items: { reason: string; message: string }[] }>(
    '-n',
    CONTROLLER_NS,
    'get',
    'events',
    '--field-selector',
    'involvedObject.name=drawbridge-ca',
  );
  return list.items.filter((e) => e.reason === reason).map((e) => e.message);
}

describe('rotating the Drawbridge CA', () => {
  let endpoint: string;
  let newCA: X509Certificate;
  let before: string; // logged in before the rotation: the old CA alone in its ca.crt
  let during: string; // logged in during init: a certificate from the old CA, both CAs in its ca.crt

  it('init: agents and logins trust a new CA next to the old one, which still signs', async () => {
    endpoint = await f.agentNow(DB);
    before = (await login('before')).dir;
    const cli = await drawbridgeCa('rotate', 'init');
    expect(cli.stderr).toBe('');
    expect(cli.stdout).toMatch(
      /^phase: init\na new CA is trusted next to the current one.*\nsigning: CN=Drawbridge CA, .*\ntrusted: CN=Drawbridge CA \d{4}-/,
    );
    const { bundle, message } = await published('init');
    const cas = certs(bundle);
    expect(cas).toHaveLength(2);
    expect(cas[0]!.fingerprint256).toBe(oldCA().fingerprint256);
    newCA = cas[1]!;
    expect(newCA.subject).toMatch(/CN=Drawbridge CA \d{4}-/);
    expect(message).toContain('drawbridge.dev/ca-rotation=update');
    expect(await eventually('event', async () => (await events('CARotationInit'))[0])).toContain('new CA');

    endpoint = await rolled(endpoint, (d) => d['ca.crt'] === bundle);
    await works(before, endpoint);
    const l = await login('during');
    during = l.dir;
    expect(signedBy(l.cert, oldCA())).toBe(true);
    expect(await readFile(path.join(during, 'ca.crt'), 'utf8')).toBe(bundle);
  }, 240_000);

  it('update: the new CA signs logins and the agent; a certificate from the old CA still works', async () => {
    expect((await drawbridgeCa('rotate', 'update')).code).toBe(0);
    const { bundle } = await published('update');
    expect(certs(bundle).map((c) => c.fingerprint256)).toEqual([
      newCA.fingerprint256,
      oldCA().fingerprint256,
    ]);
    endpoint = await rolled(endpoint, (d) => signedBy(new X509Certificate(d['tls.crt']!), newCA));

    await works(during, endpoint); // old-CA client certificate, agent verified with the bundle
    const after = await login('after');
    expect(signedBy(after.cert, newCA)).toBe(true);
    await works(after.dir, endpoint);
    // The old key signs nothing any more: it is gone from the Secret.
    const secret = await getJson<Obj>('-n', CONTROLLER_NS, 'get', 'secret', 'drawbridge-ca');
    expect(Object.keys(secret.data!).sort()).toEqual(['previous.crt', 'tls.crt', 'tls.key']);
  }, 240_000);

  it('standby: the old CA is dropped, and a certificate it issued is refused with what to do', async () => {
    await request('standby');
    const { bundle } = await published('standby');
    expect(certs(bundle).map((c) => c.fingerprint256)).toEqual([newCA.fingerprint256]);
    endpoint = await rolled(endpoint, (d) => d['ca.crt'] === bundle);

    const refused = await psql(during, endpoint);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(
      /FATAL: {2}client certificate rejected: \w+ \(its issuer is not a CA this agent trusts\)\nHINT: {2}get a fresh certificate with kubectl db login NAME/,
    );
    await works(path.join(saved, 'after'), endpoint);
  }, 240_000);

  it('refuses a jump over init with a Warning naming the fix, and no key in any message', async () => {
    const cli = await drawbridgeCa('rotate', 'update');
    expect(cli.code).toBe(1);
    expect(cli.stderr).toBe(
      'drawbridge: cannot go from phase standby to update: set drawbridge.dev/ca-rotation=init first and wait for the agents to roll\n',
    );
    expect((await drawbridgeCa('status')).stdout).toMatch(/^phase: standby\none CA signs and is trusted;/);
    await request('update');
    const warning = await eventually('warning', async () => (await events('CARotationRefused'))[0]);
    expect(warning).toBe(
      'cannot go from phase standby to update: set drawbridge.dev/ca-rotation=init first and wait for the agents to roll',
    );
    const cm = await getJson<Obj>('-n', CONTROLLER_NS, 'get', 'configmap', 'drawbridge-ca');
    expect(cm.metadata.annotations!['drawbridge.dev/ca-rotation-message']).toBe(warning);
    const all = await f.plane.kubectl(['-n', CONTROLLER_NS, 'get', 'events', '-o', 'yaml']);
    expect(`${all}${JSON.stringify(cm)}`).not.toContain('PRIVATE KEY');
  }, 120_000);
});
