// The AWS identity of in-cluster agents, against the real API server (test/k8s): the IRSA role
// annotation on each AWS Database's agent ServiceAccount — the Database's own, or the controller-wide
// default from `--config` (Helm agents.aws.roleArn) — and CredentialsReady=False AgentIdentityMissing
// while an AWS Database's agent has none. The controller runs alone (no node agent, no AWS calls).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ControllerProcess, type OperatorEnv, eventually, logOf, startOperatorEnv } from './fixture.js';

const NS = 'irsa';
const DEFAULT_ROLE = 'arn:aws:iam::123456789012:role/drawbridge-agents';
const OWN_ROLE = 'arn:aws:iam::123456789012:role/cache-agent';
const IRSA = 'eks.amazonaws.com/role-arn';

let env: OperatorEnv;

interface Db {
  status?: { conditions?: { type: string; status: string; reason: string; message: string }[] };
}

function awsDatabase(name: string, auth: string, type: string, agent: object = {}) {
  const redis = type === 'elasticache';
  return {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'Database',
    metadata: { name, namespace: NS },
    spec: {
      protocol: redis ? 'redis' : 'postgres',
      uri: redis ? 'rediss://127.0.0.1:1' : 'postgres://127.0.0.1:1',
      auth: { type: auth },
      aws: {
        type,
        region: 'us-east-1',
        accountId: '123456789012',
        identifiers: redis ? { replicationGroup: name } : { instance: name },
      },
      agent,
    },
  };
}

async function saRole(db: string): Promise<string | undefined> {
  const sa = await env.get<{ metadata: { annotations?: Record<string, string> } }>(
    'serviceaccount',
    `drawbridge-${db}`,
    NS,
  );
  return sa ? (sa.metadata.annotations?.[IRSA] ?? 'none') : undefined;
}

async function credentials(db: string) {
  const d = await env.get<Db>('database', db, NS);
  return d?.status?.conditions?.find((c) => c.type === 'CredentialsReady');
}

async function stop(c: ControllerProcess): Promise<void> {
  if (c.exited) return;
  const gone = new Promise((r) => c.child.once('exit', r));
  c.child.kill('SIGTERM');
  await gone;
}

beforeAll(async () => {
  env = await startOperatorEnv({ controllers: 0, namespaces: [NS], nodeAgent: false });
});

afterAll(async () => {
  await env?.stop();
});

describe('agent AWS identity', () => {
  it('without a default role: the Database annotation is used, and a Database with none says what to set', async () => {
    const c = env.startController('no-default');
    try {
      await env.apply([
        awsDatabase('orders', 'rds-iam', 'rds'),
        awsDatabase('cache', 'elasticache-iam', 'elasticache', {
          serviceAccountAnnotations: { [IRSA]: OWN_ROLE },
        }),
      ]);
      const missing = await eventually('orders AgentIdentityMissing', async () => {
        const cond = await credentials('orders');
        return cond?.reason === 'AgentIdentityMissing' && cond;
      }).catch(withLog(c));
      expect(missing.status).toBe('False');
      expect(missing.message).toMatch(/agents\.aws\.roleArn/);
      expect(missing.message).toMatch(
        /spec\.agent\.serviceAccountAnnotations\["eks\.amazonaws\.com\/role-arn"\]/,
      );
      expect(await eventually('orders SA', () => saRole('orders'))).toBe('none');
      expect(await eventually('cache SA', () => saRole('cache'))).toBe(OWN_ROLE);
      const cache = await eventually('cache CredentialsReady', () => credentials('cache'));
      expect(cache.reason).not.toBe('AgentIdentityMissing');
    } finally {
      await stop(c);
    }
  });

  it('with agents.aws.roleArn: every AWS agent without its own role gets it, and the condition clears', async () => {
    const config = path.join(env.plane.dir, 'controller-agents.yaml');
    await writeFile(config, stringify({ agents: { aws: { roleArn: DEFAULT_ROLE } } }));
    const c = env.startController('with-default', { args: [`--config=${config}`] });
    try {
      const role = await eventually('orders SA role', async () => {
        const r = await saRole('orders');
        return r !== 'none' && r;
      }).catch(withLog(c));
      expect(role).toBe(DEFAULT_ROLE);
      expect(await saRole('cache')).toBe(OWN_ROLE);
      const cred = await eventually('orders condition cleared', async () => {
        const cond = await credentials('orders');
        return cond && cond.reason !== 'AgentIdentityMissing' && cond;
      });
      expect(cred.reason).toBe('CredentialsFromCloudIdentity');
      const deploy = await env.get<{
        spec: { template: { metadata: { annotations: Record<string, string> } } };
      }>('deployment', 'drawbridge-orders', NS);
      expect(deploy!.spec.template.metadata.annotations['drawbridge.dev/aws-role-arn']).toBe(DEFAULT_ROLE);
    } finally {
      await stop(c);
    }
  });
});

/** Rethrows with the controller's log tail, for a failure that happened inside it. */
function withLog(c: ControllerProcess) {
  return (err: unknown): never => {
    throw new Error(`${String(err)}\n${logOf(c)}`);
  };
}
