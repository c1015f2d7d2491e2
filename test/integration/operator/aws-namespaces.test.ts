// Helm value aws.namespaces against the real API server (test/k8s): with aws.namespaces=[team-a] a
// tenant of team-b who creates an AWS Database gets neither the agents' role (agents.aws.roleArn) on
// its agent ServiceAccount nor a place in the IAM policy the controller prints (its resources, its
// assumeRoleArn), and the Database says why (CredentialsReady=False AWSNamespaceNotAllowed, a Warning
// Event); team-a's Database gets both. iamBootstrap=print makes no AWS call, so no AWS API is needed.
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ControllerProcess,
  type OperatorEnv,
  eventsOf,
  eventually,
  logOf,
  startOperatorEnv,
} from './fixture.js';

const AGENTS_ROLE = 'arn:aws:iam::123456789012:role/drawbridge-agents';
const TEAM_B_TARGET = 'arn:aws:iam::123456789012:role/team-a-cache-access';
const IRSA = 'eks.amazonaws.com/role-arn';

let env: OperatorEnv;
let controller: ControllerProcess;

function cache(namespace: string, name: string, assumeRoleArn?: string) {
  return {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'Database',
    metadata: { name, namespace },
    spec: {
      protocol: 'redis',
      uri: 'rediss://127.0.0.1:1',
      auth: { type: 'elasticache-iam' },
      aws: {
        type: 'elasticache',
        region: 'us-east-1',
        accountId: '123456789012',
        identifiers: { replicationGroup: name },
        ...(assumeRoleArn ? { assumeRoleArn } : {}),
      },
    },
  };
}

async function saRole(namespace: string, db: string): Promise<string | undefined> {
  const sa = await env.get<{ metadata: { annotations?: Record<string, string> } }>(
    'serviceaccount',
    `drawbridge-${db}`,
    namespace,
  );
  return sa ? (sa.metadata.annotations?.[IRSA] ?? 'none') : undefined;
}

async function credentials(namespace: string, db: string) {
  const d = await env.get<{
    status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
  }>('database', db, namespace);
  return d?.status?.conditions?.find((c) => c.type === 'CredentialsReady');
}

/** Every IAM policy the controller logged, by log message, latest last. */
function loggedPolicies(): { msg: string; role: string; policy: string }[] {
  return readFileSync(controller.logPath, 'utf8')
    .split('\n')
    .filter((l) => l.includes('"policy"'))
    .map((l) => JSON.parse(l) as { msg: string; role: string; policy: string });
}

beforeAll(async () => {
  env = await startOperatorEnv({ controllers: 0, namespaces: ['team-a', 'team-b'], nodeAgent: false });
  const config = path.join(env.plane.dir, 'controller-aws-namespaces.yaml');
  await writeFile(
    config,
    stringify({
      aws: { namespaces: ['team-a'], iamBootstrap: 'print' },
      agents: { aws: { roleArn: AGENTS_ROLE } },
    }),
  );
  controller = env.startController('aws-namespaces', { args: [`--config=${config}`] });
  await env.apply([cache('team-a', 'cache-a'), cache('team-b', 'cache-b', TEAM_B_TARGET)]);
});

afterAll(async () => {
  await env?.stop();
});

describe('aws.namespaces', () => {
  it("gives a listed namespace's agent the agents' role, and one not listed none", async () => {
    const withLog = (err: unknown): never => {
      throw new Error(`${String(err)}\n${logOf(controller)}`);
    };
    expect(await eventually('team-a SA', () => saRole('team-a', 'cache-a')).catch(withLog)).toBe(AGENTS_ROLE);
    expect(await eventually('team-b SA', () => saRole('team-b', 'cache-b')).catch(withLog)).toBe('none');
    const deploy = await eventually('team-b Deployment', () =>
      env.get<{ spec: { template: { metadata: { annotations: Record<string, string> } } } }>(
        'deployment',
        'drawbridge-cache-b',
        'team-b',
      ),
    );
    expect(deploy.spec.template.metadata.annotations['drawbridge.dev/aws-role-arn']).toBeUndefined();
  });

  it("never writes the agents' role onto the agent of a Database not listed that names it as its own", async () => {
    const db = cache('team-b', 'cache-c');
    const borrowing = {
      ...db,
      spec: { ...db.spec, agent: { serviceAccountAnnotations: { [IRSA]: AGENTS_ROLE } } },
    };
    await env.apply([borrowing]);
    expect(await eventually('team-b cache-c SA', () => saRole('team-b', 'cache-c'))).toBe('none');
    const cond = await eventually('cache-c CredentialsReady', async () => {
      const c = await credentials('team-b', 'cache-c');
      return c?.reason === 'AWSNamespaceNotAllowed' && c;
    });
    expect(cond.message).toMatch(/nor the agents' role named in spec\.agent\.serviceAccountAnnotations/);
  });

  it('reports AWSNamespaceNotAllowed on the Database not listed, with a Warning Event naming the fix', async () => {
    const cond = await eventually('team-b CredentialsReady', async () => {
      const c = await credentials('team-b', 'cache-b');
      return c?.reason === 'AWSNamespaceNotAllowed' && c;
    });
    expect(cond.status).toBe('False');
    expect(cond.message).toMatch(/add team-b to the Helm value aws\.namespaces/);
    expect(cond.message).toMatch(/spec\.agent\.serviceAccountAnnotations/);
    const teamA = await eventually('team-a CredentialsReady', () => credentials('team-a', 'cache-a'));
    expect(teamA.reason).not.toBe('AWSNamespaceNotAllowed');
    expect(teamA.reason).not.toBe('AgentIdentityMissing');
    const events = await eventually('team-b Warning Event', async () => {
      const list = JSON.parse(
        await eventsOf(env, 'team-b', 'involvedObject.kind=Database,involvedObject.name=cache-b'),
      ) as { items: { type: string; reason: string; message: string }[] };
      const found = list.items.filter((e) => e.reason === 'AWSNamespaceNotAllowed');
      return found.length > 0 && found;
    });
    expect(events[0]!.type).toBe('Warning');
    expect(events[0]!.message).toMatch(/aws\.namespaces/);
  });

  it("plans the IAM policies for the listed namespace's Database only, never team-b's role", async () => {
    const agents = await eventually('agents policy logged', async () => {
      const p = loggedPolicies().filter((l) => l.msg === "IAM policy Drawbridge's agents need");
      return p.length > 0 && p.at(-1)!;
    });
    expect(agents.role).toBe(AGENTS_ROLE);
    expect(agents.policy).toContain('replicationgroup:cache-a');
    expect(agents.policy).not.toContain('cache-b');
    const all = loggedPolicies();
    expect(all.some((l) => l.msg === 'IAM policy Drawbridge needs')).toBe(true);
    for (const l of all) {
      expect(l.role).not.toBe(TEAM_B_TARGET);
      expect(l.policy).not.toContain(TEAM_B_TARGET);
      expect(l.policy).not.toContain('cache-b');
    }
  });

  it('refuses a Database whose spec.aws would put an IAM wildcard in the policy it plans', async () => {
    const wild = (name: string, aws: object) => {
      const db = cache('team-a', name);
      return { ...db, spec: { ...db.spec, aws: { ...db.spec.aws, ...aws } } };
    };
    const refused: [object, RegExp][] = [
      [
        wild('wild-role', { assumeRoleArn: 'arn:aws:iam::*:role/*' }),
        /spec\.aws\.assumeRoleArn.*should match/,
      ],
      [wild('wild-region', { region: '*' }), /spec\.aws\.region.*should match/],
      [
        wild('wild-group', { identifiers: { replicationGroup: '*' } }),
        /spec\.aws\.identifiers\.replicationGroup.*should match/,
      ],
    ];
    for (const [db, message] of refused) await expect(env.apply([db])).rejects.toThrow(message);
    for (const l of loggedPolicies()) expect(l.policy).not.toMatch(/iam::\*|replicationgroup:\*|wild-/);
  });
});
