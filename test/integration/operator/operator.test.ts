/**
 * The operator against a real API server: a Database and its access rules go in, the controller
 * (two leader-elected processes) creates the agent's objects, the node agent runs the agent, and
 * people and workloads reach PostgreSQL through it with CSR-issued certificates or projected tokens.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { workloadAudience } from '../../../src/api/runtime.js';
import { agentName } from '../../../src/operator/names.js';
import { type PostgresServer, startPostgres } from '../../support/postgres.js';
import { argoHealth } from '../../support/argocd.js';
import { RedisCluster } from '../../support/redis-cluster.js';
import { NS, PASSWORDS, accessDocs, database as pgDatabase, redisDocs, secret } from './docs.js';
import { CONTROLLER_NS, type OperatorEnv, eventually, logOf, startOperatorEnv } from './fixture.js';
import { type Condition, agentHost, people } from './people.js';

let env: OperatorEnv;
let postgres: PostgresServer;
let cluster: RedisCluster;
let caPem: string;
let login: ReturnType<typeof people>['login'];
let token: ReturnType<typeof people>['token'];
let client: ReturnType<typeof people>['client'];
const database = (name: string, spec: object = {}) => pgDatabase(postgres, name, spec);

type Obj = {
  metadata: Record<string, unknown> & { resourceVersion: string };
  status?: Record<string, unknown>;
};

function redis(endpoint: string, opts: { cert?: string; key?: string; password: string }): Redis {
  const [host, port] = endpoint.split(':');
  const r = new Redis({
    host,
    port: Number(port),
    username: 'app',
    password: opts.password,
    tls: { ca: caPem, cert: opts.cert, key: opts.key, servername: agentHost('sessions') },
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    lazyConnect: true,
    enableReadyCheck: false, // INFO is @dangerous, which the role denies
  });
  r.on('error', () => undefined);
  return r;
}

function conditions(db: Obj | undefined): Record<string, Condition> {
  const list = (db?.status?.conditions ?? []) as Condition[];
  return Object.fromEntries(list.map((c) => [c.type, c]));
}

async function waitReady(name: string): Promise<Obj> {
  return eventually(
    `Database ${name} Ready`,
    async () => {
      const db = await env.get<Obj>('database', name, NS);
      return conditions(db).Ready?.status === 'True' ? db : undefined;
    },
    90_000,
  );
}

beforeAll(async () => {
  const clusterStarting = RedisCluster.start();
  postgres = await startPostgres({
    roles: Object.entries(PASSWORDS).map(([name, password]) => ({ name, password })),
    databases: ['orders'],
  });
  env = await startOperatorEnv({ controllers: 2, namespaces: [NS] });
  await env.apply([
    secret('pg-ca', { 'ca.crt': postgres.ca.certPem }),
    secret('pg-passwords', PASSWORDS),
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'app', namespace: NS } },
    ...accessDocs(),
    database('orders'),
  ]);
  cluster = await clusterStarting;
  await env.apply(redisDocs(cluster));
  const cm = await eventually('CA ConfigMap', () =>
    env.get<{ data: Record<string, string> }>('configmap', 'drawbridge-ca', CONTROLLER_NS),
  );
  caPem = cm.data['ca.crt']!;
  ({ login, token, client } = people(env, caPem));
});

afterEach((ctx) => {
  if (ctx.task.result?.state !== 'fail') return;
  for (const c of env.controllers)
    console.log(`controller ${c.identity} (exited: ${c.exited}):\n${logOf(c)}`);
});

afterAll(async () => {
  await env?.stop();
  await postgres?.stop();
  await cluster?.stop();
});

describe('Database → agent', () => {
  it('creates the agent objects, runs the agent and reports every condition', async () => {
    const db = await waitReady('orders');
    const c = conditions(db);
    expect(c.AgentReady).toMatchObject({ status: 'True', reason: 'AgentAvailable' });
    expect(c.BackendReachable).toMatchObject({ status: 'True', reason: 'BackendReachable' });
    expect(c.CredentialsReady).toMatchObject({ status: 'True', reason: 'SecretFound' });
    expect(db.status).toMatchObject({ endpoint: `drawbridge-orders.${NS}.svc:5432`, observedGeneration: 1 });
    expect(db.metadata.finalizers).toContain('drawbridge.dev/agent-cleanup');
    expect(await argoHealth(db)).toEqual({
      status: 'Healthy',
      message: `agent serving at drawbridge-orders.${NS}.svc:5432`,
    });

    const name = agentName('orders');
    for (const kind of ['deployment', 'service', 'serviceaccount', 'role', 'rolebinding']) {
      const obj = await env.get<{
        metadata: { ownerReferences: { name: string }[]; managedFields: { manager: string }[] };
      }>(kind, name, NS);
      expect(obj?.metadata.ownerReferences[0]?.name, kind).toBe('orders');
      expect(
        obj?.metadata.managedFields.map((f) => f.manager),
        kind,
      ).toContain('drawbridge');
    }
    expect(await env.get('secret', `${name}-tls`, NS)).toBeDefined();
    expect(await env.get('poddisruptionbudget', name, NS)).toBeUndefined(); // one replica
  });

  it('changes nothing when the same manifests are applied again', async () => {
    const name = agentName('orders');
    const before = await env.get<Obj>('deployment', name, NS);
    const out = await env.apply([...accessDocs(), database('orders')]);
    expect(out).not.toMatch(/configured/);
    await sleep(4000); // more than one health interval: the controller has re-reconciled
    const after = await env.get<Obj>('deployment', name, NS);
    expect(after?.metadata.resourceVersion).toBe(before?.metadata.resourceVersion);
  });

  it('reports an invalid Database stored before the CRD checked it, with the field to fix', async () => {
    // The API server refuses it now (test/integration/operator/crd.test.ts); an object stored under an
    // older CRD without the CEL rules is what the controller still has to report.
    const crd = JSON.parse(await env.plane.kubectl(['get', 'crd', 'databases.drawbridge.dev', '-o', 'json']));
    const spec = crd.spec.versions[0].schema.openAPIV3Schema.properties.spec;
    delete spec['x-kubernetes-validations'];
    await env.apply([{ ...crd, metadata: { name: crd.metadata.name }, status: undefined }]);
    await eventually('the CRD without its rules', () =>
      env.apply([database('broken', { uri: 'redis://127.0.0.1:6379' })]).then(() => true),
    );
    await env.plane.kubectl(['apply', '-f', path.resolve('crds')]);
    const ready = await eventually(
      'Ready=False',
      async () => conditions(await env.get<Obj>('database', 'broken', NS)).Ready,
    );
    expect(ready).toMatchObject({ status: 'False', reason: 'InvalidSpec' });
    expect(ready.message).toMatch(/spec\.uri/);
    expect(await env.get('deployment', agentName('broken'), NS)).toBeUndefined();
    await env.plane.kubectl(['delete', 'database', 'broken', '-n', NS]);
  });
});

describe('CSR signer and the agent', () => {
  it("signs alice's CSR, capped at her role's maxSessionTTL, and she runs a query", async () => {
    const kubeconfig = await env.plane.makeUserKubeconfig('alice', ['devs']);
    const {
      certificate,
      keyPem,
      conditions: conds,
    } = await login(kubeconfig, 'alice-1', { cn: 'alice', orgs: ['devs'] }, { dbUser: 'alice' });
    expect(conds.find((x) => x.type === 'Approved')?.reason).toBe('AccessAllowed');
    const { X509Certificate } = await import('node:crypto');
    const cert = new X509Certificate(certificate!);
    const lifetimeS = (Date.parse(cert.validTo) - Date.now()) / 1000;
    expect(lifetimeS).toBeLessThanOrEqual(3600 + 5);
    expect(lifetimeS).toBeGreaterThan(3000);

    const endpoint = await env.nodeAgent.waitForEndpoint(NS, agentName('orders'));
    const c = client(endpoint, 'alice', { cert: certificate, key: keyPem });
    await c.connect();
    const r = await c.query('select current_user as u');
    expect(r.rows[0].u).toBe('alice');
    await c.end();
  });

  it("refuses a certificate signed under another namespace's roles for longer than its own allow", async () => {
    // A tenant owns `tenant-x`: a Database there and a role granting alice a 30-day maxSessionTTL.
    const T = 'tenant-x';
    await env.plane.kubectl(['create', 'namespace', T]);
    const V = 'drawbridge.dev/v1alpha1';
    await env.apply([
      {
        apiVersion: V,
        kind: 'Database',
        metadata: { name: 'bait', namespace: T },
        spec: { protocol: 'postgres', uri: 'postgres://127.0.0.1:1', auth: { type: 'passthrough' } },
      },
      {
        apiVersion: V,
        kind: 'AccessRole',
        metadata: { name: 'long', namespace: T },
        spec: {
          allow: { databaseLabels: { '*': '*' }, databaseUsers: ['*'] },
          options: { maxSessionTTL: '720h' },
        },
      },
      {
        apiVersion: V,
        kind: 'DatabaseUser',
        metadata: { name: 'alice', namespace: T },
        spec: { subjects: [{ kind: 'User', name: 'alice' }], roles: ['long'] },
      },
    ]);
    const kubeconfig = await env.plane.makeUserKubeconfig('alice');
    const long = await login(
      kubeconfig,
      'alice-tenant',
      { cn: 'alice' },
      { namespace: T, database: 'bait', dbUser: 'alice', expirationSeconds: 30 * 86_400 },
    );
    expect(long.certificate).toBeTruthy();
    const endpoint = await env.nodeAgent.waitForEndpoint(NS, agentName('orders'));
    const c = client(endpoint, 'alice', { cert: long.certificate, key: long.keyPem });
    await expect(c.connect()).rejects.toThrow(
      /client certificate was issued for 720h, longer than the maxSessionTTL \(1h\) of the roles that decide here.*kubectl db login orders --db-user alice/,
    );
  });

  it('denies a person no DatabaseUser names, and a CSR naming someone else, with the reason', async () => {
    const mallory = await env.plane.makeUserKubeconfig('mallory');
    const denied = await login(mallory, 'mallory-1', { cn: 'mallory' });
    expect(denied.certificate).toBeUndefined();
    const d = denied.conditions.find((x) => x.type === 'Denied')!;
    expect(d.reason).toBe('AccessDenied');
    expect(d.message).toMatch(/not a subject of any DatabaseUser/);

    const alice = await env.plane.makeUserKubeconfig('alice');
    const spoof = await login(alice, 'alice-as-bob', { cn: 'bob' });
    expect(spoof.conditions.find((x) => x.type === 'Denied')?.reason).toBe('SubjectMismatch');
  });

  it("accepts a workload token for the Database's own audience, and refuses another Database's, the shared and the API server's", async () => {
    const endpoint = await env.nodeAgent.waitForEndpoint(NS, agentName('orders'));
    const ok = client(endpoint, 'carol', {}, await token(workloadAudience(NS, 'orders')));
    await ok.connect();
    expect((await ok.query('select current_user as u')).rows[0].u).toBe('carol');
    await ok.end();

    // carol's ServiceAccount may use orders: a token it sent to sessions (whose agent then holds it) must not open orders.
    const replayed = client(endpoint, 'carol', {}, await token(workloadAudience(NS, 'sessions')));
    await expect(replayed.connect()).rejects.toThrow(
      `not a ServiceAccount token for audience "${workloadAudience(NS, 'orders')}"`,
    );
    const shared = client(endpoint, 'carol', {}, await token('drawbridge.dev'));
    await expect(shared.connect()).rejects.toThrow(/the shared audience "drawbridge\.dev"/);
    const wrong = client(endpoint, 'carol', {}, await token());
    await expect(wrong.connect()).rejects.toThrow(/token was refused/);

    const db = await env.get<{ status: { conditions: Condition[] } }>('database', 'orders', NS);
    expect(db?.status.conditions.find((c) => c.type === 'WorkloadTokensScoped')).toMatchObject({
      status: 'True',
      reason: 'DatabaseAudience',
      message: `workload tokens must be for audience ${workloadAudience(NS, 'orders')}`,
    });
  });

  it('ends a live session when the role that allowed it is removed', async () => {
    const kubeconfig = await env.plane.makeUserKubeconfig('alice');
    const { certificate, keyPem } = await login(kubeconfig, 'alice-2', { cn: 'alice' }, { dbUser: 'alice' });
    const endpoint = await env.nodeAgent.waitForEndpoint(NS, agentName('orders'));
    const c = client(endpoint, 'alice', { cert: certificate, key: keyPem });
    // pg reports the server's message, then the closed socket: keep listening for both.
    const ended = new Promise<Error>((resolve) => c.on('error', resolve));
    await c.connect();
    await c.query('select 1');
    await env.plane.kubectl(['delete', 'databaseuser', 'alice', '-n', NS]);
    expect((await ended).message).toMatch(/revoked/);
    await env.apply(accessDocs());
  });
});

describe('Redis Cluster through the agent', () => {
  it('serves alice (CSR certificate) and the app workload (token) across every slot, and refuses a foreign token', async () => {
    await waitReady('sessions');
    const endpoint = await env.nodeAgent.waitForEndpoint(NS, agentName('sessions'));
    const kubeconfig = await env.plane.makeUserKubeconfig('alice');
    const { certificate, keyPem } = await login(
      kubeconfig,
      'alice-redis',
      { cn: 'alice' },
      { dbUser: 'app', database: 'sessions' },
    );
    const alice = redis(endpoint, {
      cert: certificate,
      key: keyPem,
      password: 'ignored: the certificate says who',
    });
    await alice.connect();
    // Keys spread over many slots, so over all three masters of the cluster.
    for (let i = 0; i < 30; i++) await alice.set(`k${i}`, `v${i}`);
    expect(await alice.get('k17')).toBe('v17');
    await expect(alice.flushall()).rejects.toThrow(/dangerous|denied/i);
    alice.disconnect();

    const app = redis(endpoint, { password: await token(workloadAudience(NS, 'sessions')) });
    await app.connect();
    expect(await app.get('k3')).toBe('v3');
    app.disconnect();

    // The API server's own audience, and that of orders (a token the agent of orders has seen).
    for (const [audience, refusal] of [
      [undefined, /token was refused/],
      [
        workloadAudience(NS, 'orders'),
        /not a ServiceAccount token for audience "drawbridge\.dev\/[^/]+\/sessions"/,
      ],
    ] as const) {
      const foreign = redis(endpoint, { password: await token(audience) });
      // ioredis reports the AUTH error and, depending on timing, "Connection is closed" in either order.
      const errors: string[] = [];
      foreign.on('error', (e: Error) => errors.push(e.message));
      await foreign.connect().catch((e: Error) => errors.push(e.message));
      await new Promise((r) => setTimeout(r, 200));
      expect(errors.join('\n')).toMatch(refusal);
      foreign.disconnect();
    }
  });
});

describe('lifecycle', () => {
  it('removes every agent object when the Database is deleted', async () => {
    const name = agentName('orders');
    await env.plane.kubectl(['delete', 'database', 'orders', '-n', NS, '--wait=true', '--timeout=60s']);
    for (const [kind, n] of [
      ['deployment', name],
      ['service', name],
      ['serviceaccount', name],
      ['role', name],
      ['rolebinding', name],
      ['secret', `${name}-tls`],
    ] as const) {
      expect(await env.get(kind, n, NS), kind).toBeUndefined();
    }
    await eventually('agent process stopped', async () => env.nodeAgent.endpoints(NS, name).length === 0);
  });

  it('hands over to the standby when the leader is killed', async () => {
    const lease = async () =>
      (await env.get<{ spec: { holderIdentity?: string } }>('lease', 'drawbridge-controller', CONTROLLER_NS))
        ?.spec.holderIdentity;
    const leaderId = await eventually('a leader', lease);
    const leader = env.controllers.find((c) => c.identity === leaderId)!;
    const killedAt = Date.now();
    leader.child.kill('SIGKILL');

    await env.apply([database('payments', { agent: { replicas: 2 } })]);
    const standby = await eventually(
      'standby leads',
      async () => {
        const holder = await lease();
        return holder && holder !== leaderId ? holder : undefined;
      },
      30_000,
    );
    const failoverMs = Date.now() - killedAt;
    console.log(`leader failover took ${failoverMs} ms`);
    expect(standby).not.toBe(leaderId);

    const name = agentName('payments');
    await eventually('payments agent objects', () => env.get('deployment', name, NS), 30_000);
    expect(await env.get('poddisruptionbudget', name, NS)).toBeDefined();
    await waitReady('payments').catch((err: Error) => {
      throw new Error(`${err.message}\n${env.controllers.map(logOf).join('\n')}`);
    });
    await eventually('both agent replicas ready', async () =>
      /2\/2/.test(conditions(await env.get<Obj>('database', 'payments', NS)).AgentReady?.message ?? ''),
    ).catch(async (err: Error) => {
      // Which side fell behind: the replicas (node agent: status, logs) or the new leader (condition).
      const db = await env.get<Obj>('database', 'payments', NS);
      const deployment = await env.get<Obj>('deployment', name, NS);
      const replicas = env.nodeAgent.logs(NS, name).map((p) => `${p}:\n${tail(p)}`);
      throw new Error(
        `${err.message}\nAgentReady: ${JSON.stringify(conditions(db).AgentReady)}\n` +
          `Deployment status: ${JSON.stringify(deployment?.status)}\n${replicas.join('\n')}\n` +
          env.controllers.map(logOf).join('\n'),
      );
    });
  });
});

/** The last lines of a replica's log. */
function tail(logPath: string): string {
  return readFileSync(logPath, 'utf8').split('\n').slice(-20).join('\n');
}
