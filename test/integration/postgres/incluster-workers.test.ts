// An in-cluster agent of two workers (`drawbridge agent --database NS/NAME --workers 2`) against the real
// kube-apiserver (test/k8s) and PostgreSQL, started as in a pod: KUBERNETES_SERVICE_HOST/PORT and a
// service account directory (token, ca.crt, namespace). The primary alone watches the API server, with
// the service account's token and without loading client-node, and loads zod to parse what it reads;
// the workers serve from the state it passes on.
// A DatabaseUser deleted in the API server ends the sessions on both workers and refuses new ones,
// applying it again lets them in on both, a workload token is reviewed (through the primary) on both —
// for this Database's audience only: another Database's is refused, the shared one too unless the
// Database opts in, whose sessions end when it opts out — a restarted worker starts from the current
// state, and SIGTERM drains it all.
import { mkdir, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControlPlane, startControlPlane } from '../../k8s/controlplane.js';
import type { AuditEvent } from '../../../src/agent/audit.js';
import { type AgentProcesses, metricValue, spawnWorkersAgent } from '../../support/agent-workers.js';
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
/** The audience workload tokens for this Database must be for. */
const AUDIENCE = `drawbridge.dev/${NS}/orders-pg`;

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

/** A token for the `app` ServiceAccount, for `audience` (the API server's own when unset). */
async function appToken(audience?: string): Promise<string> {
  const args = ['create', 'token', 'app', '-n', NS, ...(audience ? [`--audience=${audience}`] : [])];
  return (await plane.kubectl(args)).trim();
}

/** The Database orders-pg as applied at the start, with `workloads` when given. */
function ordersDatabase(workloads?: object): object {
  const db = baseDocs(f.pg.port, f.pg.ca.certPem)[0] as { spec: object };
  return inNamespace({ ...db, spec: { ...db.spec, ...(workloads ? { workloads } : {}) } });
}

/** Waits until a session with `token` (alice's certificate when unset) gets in, once a change has arrived. */
async function eventuallyConnects(token?: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const c = client(token);
    if (
      await c.connect().then(
        () => c.end().then(() => true),
        () => false,
      )
    )
      return;
    await sleep(100);
  }
  throw new Error('never let in');
}

/** The token.refused audit events, once there are `n`. */
async function eventuallyAudited(n: number): Promise<AuditEvent[]> {
  for (let i = 0; ; i++) {
    const refused = (await agent.auditEvents()).filter((e) => e.type === 'token.refused');
    if (refused.length >= n || i >= 50) return refused;
    await sleep(100);
  }
}

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
    await eventuallyConnects();
    await onBothWorkers();
  });

  it("accepts a token for this Database's audience on both workers: the primary asks the TokenReviews", async () => {
    const sessions = await onBothWorkers(await appToken(AUDIENCE));
    for (const c of sessions) expect((await c.query('select current_user as u')).rows[0].u).toBe('alice');
    await expect(client(await appToken()).connect()).rejects.toThrow(/token was refused/);
  });

  it("refuses a token for another Database's audience, and for the shared one with the fix; counted and audited", async () => {
    // The same ServiceAccount, allowed here: only the audience differs. A token the workload sends to
    // another database (and that database's agent sees) opens nothing here.
    const other = client(await appToken(`drawbridge.dev/${NS}/sessions`));
    await expect(other.connect()).rejects.toThrow(
      `the ServiceAccount token was refused: it is not a ServiceAccount token for audience "${AUDIENCE}" (this database's)`,
    );
    const err = (await client(await appToken('drawbridge.dev'))
      .connect()
      .catch((e: unknown) => e)) as { message: string; hint?: string };
    expect(err.message).toMatch(
      /it is for the shared audience "drawbridge\.dev", which any Drawbridge agent/,
    );
    expect(err.message).toContain(`this database accepts audience "${AUDIENCE}" only`);
    expect(err.hint).toContain(
      `{serviceAccountToken: {audience: ${AUDIENCE}, expirationSeconds: 3600, path: token}}`,
    );
    expect(err.hint).toContain(`spec.workloads.acceptSharedAudience: true on Database ${NS}/orders-pg`);

    const metrics = await agent.metricsText();
    expect(metricValue(metrics, 'drawbridge_tokens_refused_total', 'reason="shared_audience"')).toBe(1);
    expect(metricValue(metrics, 'drawbridge_tokens_refused_total', 'reason="other_audience"')).toBe(2);
    const refused = await eventuallyAudited(3);
    expect(refused.map((e) => e.reason).sort()).toEqual([
      'other_audience',
      'other_audience',
      'shared_audience',
    ]);
    expect(refused.find((e) => e.reason === 'shared_audience')).toMatchObject({
      database: 'orders-pg',
      protocol: 'postgres',
      claimedSubject: `system:serviceaccount:${NS}:app`,
    });
  });

  it('accepts the shared audience only while the Database opts in, and ends its sessions when it opts out', async () => {
    const shared = await appToken('drawbridge.dev');
    await apply([ordersDatabase({ acceptSharedAudience: true })]);
    await eventuallyConnects(shared);
    const sessions = await onBothWorkers(shared);
    const sharedLogins = metricValue(await agent.metricsText(), 'drawbridge_tokens_shared_audience_total');
    expect(sharedLogins).toBeGreaterThanOrEqual(2);

    const ended = sessions.map(
      (c) => new Promise<string>((resolve) => c.once('error', (e: Error) => resolve(e.message))),
    );
    await apply([ordersDatabase()]);
    const messages = await Promise.race([Promise.all(ended), sleep(10_000).then(() => ['not ended'])]);
    for (const m of messages) expect(m).toMatch(/access revoked: .*shared audience drawbridge\.dev/);
    // Cached successes do not outlive the opt-in either.
    for (let i = 0; i < 4; i++) {
      await expect(client(shared).connect()).rejects.toThrow(/shared audience "drawbridge\.dev"/);
    }
    await onBothWorkers(await appToken(AUDIENCE));
  });

  it('starts a restarted worker from the current state', async () => {
    await plane.kubectl(['delete', 'databaseuser', 'alice', '-n', NS]);
    await refusedOnBoth();
    const [victim] = await agent.workerPids();
    await agent.killWorker(victim!);
    // Had the new worker the state the agent started with, alice would be let in on it.
    for (let i = 0; i < 4; i++) await expect(client().connect()).rejects.toThrow(NOT_A_SUBJECT);
    await apply([inNamespace(alice())]);
    await eventuallyConnects();
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
