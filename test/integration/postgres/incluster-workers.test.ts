// An in-cluster agent of two workers (`drawbridge agent --database NS/NAME --workers 2`) against the real
// kube-apiserver (test/k8s) and PostgreSQL, started as in a pod: KUBERNETES_SERVICE_HOST/PORT and a
// service account directory (token, ca.crt, namespace). The primary alone watches the API server, with
// the service account's token and without loading client-node, and loads zod to parse what it reads;
// the workers serve from the state it passes on.
// A DatabaseUser deleted in the API server ends the sessions on both workers and refuses new ones,
// applying it again lets them in on both, a workload token is reviewed (through the primary) on both, a
// restarted worker starts from the current state, and SIGTERM drains it all.
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane } from '../../k8s/controlplane.js';
import { type AgentProcesses, spawnWorkersAgent } from '../../support/agent-workers.js';
import { type ImportProbe, importProbe } from '../../support/import-probe-log.js';
import { freePort } from '../../support/ports.js';
import { type Fixture, baseDocs, startFixture, user } from './fixture.js';

const NS = 'shop';

let f: Fixture;
let plane: ControlPlane;
let agent: AgentProcesses;
let probe: ImportProbe;
const clients: pg.Client[] = [];

const inNamespace = (doc: object) => {
  const d = doc as { metadata: object };
  return { ...d, metadata: { ...d.metadata, namespace: NS } };
};
const apply = (docs: object[]) =>
  plane.kubectl(['apply', '-f', '-'], { input: docs.map((d) => JSON.stringify(d)).join('\n') });
/** alice may use her own PostgreSQL role on orders; the `app` ServiceAccount too, as alice. */
const alice = () => user('alice', ['dev'], { dbUsers: ['alice'], dbNames: ['orders'] });
const app = {
  apiVersion: 'drawbridge.dev/v1alpha1',
  kind: 'DatabaseUser',
  metadata: { name: 'app', namespace: NS },
  spec: {
    subjects: [{ kind: 'ServiceAccount', name: 'app', namespace: NS }],
    roles: ['dev'],
    traits: { dbUsers: ['alice'], dbNames: ['orders'] },
  },
};
const NOT_A_SUBJECT = /is not a subject of any DatabaseUser/;

beforeAll(async () => {
  [f, plane] = await Promise.all([startFixture(), startControlPlane()]);
  await plane.kubectl(['apply', '-f', path.resolve('crds')]);
  await plane.kubectl(['create', 'namespace', NS]);
  await plane.kubectl(['create', 'serviceaccount', 'app', '-n', NS]);
  const docs = baseDocs(f.pg.port, f.pg.ca.certPem, { users: [alice()] }).map(inNamespace);
  await apply([...docs, app]);

  const dir = await mkdtemp(path.join(os.tmpdir(), 'drawbridge-incluster-'));
  const tlsDir = path.join(dir, 'tls');
  await mkdir(tlsDir);
  await writeFile(path.join(tlsDir, 'tls.crt'), f.agentTls.certPem);
  await writeFile(path.join(tlsDir, 'tls.key'), f.agentTls.keyPem);
  await writeFile(path.join(tlsDir, 'ca.crt'), f.agentTls.clientCaPem);
  probe = await importProbe(dir, ['@kubernetes/client-node', 'zod']);
  // What the kubelet gives a pod: the service account's token, the cluster's CA and the namespace.
  const serviceAccount = path.join(dir, 'serviceaccount');
  await mkdir(serviceAccount);
  await plane.kubectl(['create', 'serviceaccount', 'drawbridge-agent', '-n', NS]);
  const binding = ['--clusterrole=cluster-admin', `--serviceaccount=${NS}:drawbridge-agent`];
  await plane.kubectl(['create', 'clusterrolebinding', 'drawbridge-agent', ...binding]);
  const token = await plane.kubectl(['create', 'token', 'drawbridge-agent', '-n', NS]);
  await writeFile(path.join(serviceAccount, 'token'), token.trim());
  await writeFile(path.join(serviceAccount, 'ca.crt'), plane.caPem);
  await writeFile(path.join(serviceAccount, 'namespace'), NS);
  const apiServer = new URL(plane.server);
  const audit = path.join(dir, 'audit.log');
  const port = await freePort();
  const metrics = `127.0.0.1:${await freePort()}`;
  const args = [
    'agent',
    `--database=${NS}/orders-pg`,
    `--listen=127.0.0.1:${port}`,
    `--tls-dir=${tlsDir}`,
    `--metrics=${metrics}`,
    `--audit=${audit}`,
    '--workers=2',
  ];
  const readAudit = () => readFile(audit, 'utf8');
  agent = await spawnWorkersAgent(args, {
    dir,
    port,
    metrics,
    workers: 2,
    readAudit,
    finalAudit: readAudit,
    nodeArgs: probe.nodeArgs,
    env: {
      ...probe.env,
      KUBERNETES_SERVICE_HOST: apiServer.hostname,
      KUBERNETES_SERVICE_PORT: apiServer.port,
      DRAWBRIDGE_TEST_SERVICE_ACCOUNT_DIR: serviceAccount,
    },
  });
}, 120_000);

afterAll(async () => {
  await Promise.all(clients.map((c) => c.end().catch(() => undefined)));
  await agent?.stop();
  await plane?.stop();
  await f?.stop();
});

function client(password?: string): pg.Client {
  const tls = password ? {} : { cert: f.people.alice.certPem, key: f.people.alice.keyPem };
  const c = new pg.Client({
    host: '127.0.0.1',
    port: agent.port,
    user: 'alice',
    password,
    database: 'orders',
    ssl: { ca: f.ca.certPem, servername: 'localhost', ...tls },
  });
  c.on('error', () => undefined);
  return c;
}

/** Connected sessions until each worker holds one (round-robin hands them out in turn). */
async function onBothWorkers(password?: string): Promise<pg.Client[]> {
  const byWorker = new Map<number, pg.Client>();
  for (let i = 0; i < 8 && byWorker.size < 2; i++) {
    const c = client(password);
    await c.connect();
    clients.push(c);
    await c.query('select 1');
    const localPort = (c as unknown as { connection: { stream: { localPort: number } } }).connection.stream
      .localPort;
    const worker = await agent.ownerOf(localPort);
    if (worker !== undefined && !byWorker.has(worker)) byWorker.set(worker, c);
  }
  expect(byWorker.size).toBe(2);
  return [...byWorker.values()];
}

/** alice's next connections, enough that both workers get two, are refused (once the change has arrived). */
async function refusedOnBoth(): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const c = client();
    if (
      !(await c.connect().then(
        () => c.end().then(() => true),
        () => false,
      ))
    )
      break;
    await sleep(100);
  }
  for (let i = 0; i < 4; i++) await expect(client().connect()).rejects.toThrow(NOT_A_SUBJECT);
}

/** Waits until alice gets in again after her DatabaseUser was applied. */
async function admittedAgain(): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const c = client();
    if (
      await c.connect().then(
        () => c.end().then(() => true),
        () => false,
      )
    )
      return;
    await sleep(100);
  }
}

describe('in-cluster agent of two workers', () => {
  it('loads zod in the primary only, and client-node nowhere: the service account is read directly', async () => {
    expect(await agent.workerPids()).toHaveLength(2);
    // The probe works: the primary, which parses, did load zod.
    expect(await probe.loadedBy('@kubernetes/client-node')).toEqual([]);
    expect(await probe.loadedBy('zod')).toEqual([agent.child.pid]);
  });

  it('ends sessions on both workers when the DatabaseUser is deleted, and lets them in again once applied', async () => {
    const sessions = await onBothWorkers();
    const ended = sessions.map(
      (c) => new Promise<string>((resolve) => c.once('error', (err: Error) => resolve(err.message))),
    );
    await plane.kubectl(['delete', 'databaseuser', 'alice', '-n', NS]);
    const messages = await Promise.race([Promise.all(ended), sleep(10_000).then(() => ['not ended'])]);
    for (const m of messages) expect(m).toContain('access revoked');
    await refusedOnBoth();

    await apply([inNamespace(alice())]);
    await admittedAgain();
    await onBothWorkers();
  });

  it('accepts a workload token on both workers: the primary asks the TokenReviews', async () => {
    const token = (
      await plane.kubectl(['create', 'token', 'app', '-n', NS, '--audience=drawbridge.dev'])
    ).trim();
    const sessions = await onBothWorkers(token);
    for (const c of sessions) expect((await c.query('select current_user as u')).rows[0].u).toBe('alice');
    const foreign = (await plane.kubectl(['create', 'token', 'app', '-n', NS])).trim();
    await expect(client(foreign).connect()).rejects.toThrow(/token was refused/);
  });

  it('starts a restarted worker from the current state', async () => {
    await plane.kubectl(['delete', 'databaseuser', 'alice', '-n', NS]);
    await refusedOnBoth();
    const [victim] = await agent.workerPids();
    await agent.killWorker(victim!);
    // Had the new worker the state the agent started with, alice would be let in on it.
    for (let i = 0; i < 4; i++) await expect(client().connect()).rejects.toThrow(NOT_A_SUBJECT);
    await apply([inNamespace(alice())]);
    await admittedAgain();
    await onBothWorkers();
    expect(await probe.loadedBy('@kubernetes/client-node')).toEqual([]);
    expect(await probe.loadedBy('zod')).toEqual([agent.child.pid]);
  });

  it('drains on SIGTERM: the primary stops its watches and exits 0, logging no error but the kill above', async () => {
    expect(await agent.stop()).toBe(0);
    const errors = agent
      .logs()
      .split('\n')
      .filter((l) => /"level":(50|60)/.test(l));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain('agent worker exited; starting it again');
  });
});
