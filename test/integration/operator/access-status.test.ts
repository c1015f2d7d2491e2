/**
 * Status on AccessRole and DatabaseUser, and who may reach a Database, written by the real controller
 * against a real API server: a broken pattern and a missing role show up as conditions and Warning
 * Events naming them, and fixing the cause (creating the role) turns them Ready without a restart.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { argoHealth } from '../../support/argocd.js';
import { freePort } from '../../support/ports.js';
import { type OperatorEnv, eventsOf, eventually, startOperatorEnv } from './fixture.js';

const NS = 'access';
const V = 'drawbridge.dev/v1alpha1';
let env: OperatorEnv;
let metricsUrl: string;

interface Condition {
  type: string;
  status: string;
  reason: string;
  message: string;
  observedGeneration?: number;
}
type Obj = {
  metadata: { generation: number };
  status?: { conditions?: Condition[] } & Record<string, unknown>;
};

const role = (name: string, allow: object) => ({
  apiVersion: V,
  kind: 'AccessRole',
  metadata: { name, namespace: NS },
  spec: { allow },
});
const user = (name: string, roles: string[]) => ({
  apiVersion: V,
  kind: 'DatabaseUser',
  metadata: { name, namespace: NS },
  spec: { subjects: [{ kind: 'User', name }], roles, traits: { dbUsers: [name] } },
});

beforeAll(async () => {
  env = await startOperatorEnv({ controllers: 0, namespaces: [NS], nodeAgent: false });
  metricsUrl = `http://127.0.0.1:${await freePort()}/metrics`;
  env.startController('controller-0', { args: [`--health-listen=${new URL(metricsUrl).host}`] });
  await env.apply([
    {
      apiVersion: V,
      kind: 'Database',
      metadata: { name: 'orders', namespace: NS, labels: { env: 'prod' } },
      spec: { protocol: 'postgres', uri: 'postgres://127.0.0.1:1', auth: { type: 'passthrough' } },
    },
    role('readers', { databaseLabels: { env: 'prod' }, databaseUsers: ['{{traits.dbUsers}}'] }),
    role('broken', { databaseLabels: { env: '^(prod$' }, databaseUsers: ['x'] }),
    user('alice', ['readers']),
    user('carol', ['writers']),
  ]);
});

afterAll(async () => {
  await env?.stop();
});

/** The object once its status has a Ready condition matching `want`. */
async function status(kind: string, name: string, want: Partial<Condition>): Promise<Obj> {
  return eventually(`${kind} ${name} Ready ${JSON.stringify(want)}`, async () => {
    const obj = await env.get<Obj>(kind, name, NS);
    const ready = obj?.status?.conditions?.find((c) => c.type === 'Ready');
    return ready && Object.entries(want).every(([k, v]) => ready[k as keyof Condition] === v)
      ? obj
      : undefined;
  });
}

function events(name: string): Promise<string> {
  return eventsOf(env, NS, `involvedObject.name=${name}`);
}

describe('AccessRole and DatabaseUser status', () => {
  it('a valid role counts who holds it and what it reaches', async () => {
    // Ready may be written before the controller has seen alice's DatabaseUser; the counts converge.
    const readers = await eventually('readers counts its user and database', async () => {
      const r = await status('accessrole', 'readers', { status: 'True' });
      return r.status?.users === 1 && r.status.databases === 1 ? r : undefined;
    });
    expect(readers.status).toMatchObject({
      users: 1,
      databases: 1,
      observedGeneration: readers.metadata.generation,
    });
    expect(readers.status!.conditions!.map((c) => `${c.type}=${c.status}`).sort()).toEqual([
      'Ready=True',
      'Valid=True',
    ]);
  });

  it('a broken regex: Valid=False InvalidPattern and a Warning Event naming the field', async () => {
    const broken = await status('accessrole', 'broken', { status: 'False', reason: 'InvalidPattern' });
    expect(broken.status!.conditions!.find((c) => c.type === 'Valid')!.message).toMatch(
      /spec\.allow\.databaseLabels\.env: "\^\(prod\$" is not a valid regular expression/,
    );
    await eventually('the Warning Event', async () => (await events('broken')).includes('InvalidPattern'));
  });

  it('a missing role: Ready=False RoleNotFound naming it, Ready once the role exists', async () => {
    const carol = await status('databaseuser', 'carol', { status: 'False', reason: 'RoleNotFound' });
    expect(carol.status!.conditions!.find((c) => c.type === 'Ready')!.message).toContain(
      'AccessRole "writers" not found in namespace access',
    );
    await eventually('the Warning Event', async () =>
      (await events('carol')).includes('AccessRole \\"writers\\" not found'),
    );
    expect(await env.plane.kubectl(['get', 'dbuser', 'carol', '-n', NS])).toMatch(
      /carol\s+\["writers"\]\s+False\s+RoleNotFound/,
    );

    await env.apply([
      role('writers', { databaseLabels: { env: 'prod' }, databaseUsers: ['{{traits.dbUsers}}'] }),
    ]);
    const fixed = await status('databaseuser', 'carol', { status: 'True', reason: 'RolesFound' });
    expect(fixed.status).toMatchObject({ databases: 1 });
  });

  it('the Database counts the people and roles that may reach it, and follows changes', async () => {
    await eventually('orders reached by alice and carol, through readers and writers', async () => {
      const db = await env.get<Obj>('database', 'orders', NS);
      const access = db?.status?.access as { users: number; roles: number } | undefined;
      return access?.users === 2 && access.roles === 2;
    });
    await env.plane.kubectl(['delete', 'accessrole', 'writers', '-n', NS]);
    await eventually('orders reached by alice alone', async () => {
      const db = await env.get<Obj>('database', 'orders', NS);
      const access = db?.status?.access as { users: number; roles: number } | undefined;
      return access?.users === 1 && access.roles === 1;
    });
    await status('databaseuser', 'carol', { status: 'False', reason: 'RoleNotFound' });
  });
});

describe('controller metrics', () => {
  it('reconciles timed by controller and result, queue depth, leadership and build_info', async () => {
    const text = await (await fetch(metricsUrl)).text();
    const value = (re: RegExp) => Number(re.exec(text)?.[1]);
    for (const controller of ['database', 'accessrole', 'databaseuser']) {
      const n = new RegExp(
        `^drawbridge_controller_reconcile_duration_seconds_count\\{controller="${controller}",result="(?:success|requeue)"\\} (\\d+)$`,
        'm',
      );
      expect(value(n), controller).toBeGreaterThan(0);
      expect(text).toMatch(
        new RegExp(`^drawbridge_controller_queue_depth\\{controller="${controller}"\\} \\d+$`, 'm'),
      );
    }
    expect(text).toMatch(/^drawbridge_controller_leader 1$/m);
    // orders' backend (127.0.0.1:1) refuses connections: not Ready.
    expect(text).toMatch(/^drawbridge_database_ready\{namespace="access",database="orders"\} 0$/m);
    expect(text).toMatch(
      /^drawbridge_build_info\{version="0\.1\.0",node_version="v[\d.]+",component="controller"\} 1$/m,
    );
  });
});

describe('Argo CD health (gitops/argocd/health.lua, run by Lua 5.4) of the objects the controller wrote', () => {
  it.each<[string, string, string, RegExp]>([
    ['accessrole', 'readers', 'Healthy', /held by 1 DatabaseUser/],
    ['accessrole', 'broken', 'Degraded', /^InvalidPattern: spec\.allow\.databaseLabels\.env/],
    ['databaseuser', 'carol', 'Degraded', /^RoleNotFound: .*"writers"/],
    ['database', 'orders', 'Degraded', /^BackendUnreachable: /],
  ])('%s %s: %s', async (kind, name, status, message) => {
    const health = await argoHealth(await env.get(kind, name, NS));
    expect(health.status).toBe(status);
    expect(health.message).toMatch(message);
  });

  it('Progressing before the controller has seen a change, Suspended when scaled to zero', async () => {
    const readers = (await env.get<Obj>('accessrole', 'readers', NS))!;
    const newer = {
      ...readers,
      metadata: { ...readers.metadata, generation: readers.metadata.generation + 1 },
    };
    expect(await argoHealth(newer)).toMatchObject({
      status: 'Progressing',
      message: expect.stringMatching(/generation/),
    });
    expect((await argoHealth({ metadata: { generation: 1 } })).status).toBe('Progressing');
    await env.plane.kubectl([
      'patch',
      'database',
      'orders',
      '-n',
      NS,
      '--type=merge',
      '-p',
      '{"spec":{"agent":{"replicas":0}}}',
    ]);
    await status('database', 'orders', { reason: 'AgentScaledToZero' });
    expect((await argoHealth(await env.get('database', 'orders', NS))).status).toBe('Suspended');
  });
});
