/**
 * Why the agent's pods are failing, in the Database's status and Events, against a real API server:
 * the node agent runs the agent pods as processes and writes their status as a kubelet would. An agent
 * whose serving key is not a key exits at start (its workers die, its primary gives up), the pod goes
 * into CrashLoopBackOff with the agent's own error as its last termination message, and the controller
 * turns that into AgentReady=False AgentCrashLooping naming the key file and the fix, with no secret in
 * it; doing what the fix says (deleting the Secret: the controller issues a new one) returns
 * AgentAvailable. When one replica serves and a second crash-loops, AgentReady and Ready stay True but
 * AgentReady says AgentDegraded naming the failing pod, and a Warning Event AgentDegraded tells it.
 */
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { agentName, agentTlsSecretName } from '../../../src/operator/names.js';
import { startRedis } from '../../support/redis.js';
import { type OperatorEnv, eventsOf, eventually, startOperatorEnv } from './fixture.js';
import type { Condition } from './people.js';

const NS = 'pods';
const DEPLOYMENT = agentName('cache');
let env: OperatorEnv;

type Obj = { status?: { conditions?: Condition[] } };
type Secret = { data: Record<string, string> };
type Pods = {
  items: {
    metadata: { name: string };
    status: {
      containerStatuses?: {
        restartCount: number;
        state: { waiting?: { reason: string } };
        lastState: { terminated?: { exitCode: number; message?: string } };
      }[];
    };
  }[];
};

beforeAll(async () => {
  env = await startOperatorEnv({ controllers: 1, namespaces: [NS] });
  await env.apply([
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'cache', namespace: NS },
      // No backend is needed: AgentReady is about the agent's pods. Two workers: the primary gives up.
      spec: {
        protocol: 'redis',
        uri: 'redis://127.0.0.1:1',
        tls: { mode: 'disabled' },
        auth: { type: 'passthrough' },
        agent: { workers: 2 },
      },
    },
  ]);
}, 120_000);

afterAll(async () => {
  await env?.stop();
});

async function agentReady(
  match: (c: Condition) => boolean,
  what: string,
  database = 'cache',
): Promise<Condition> {
  return eventually(
    what,
    async () => {
      const db = await env.get<Obj>('database', database, NS);
      const c = db?.status?.conditions?.find((x) => x.type === 'AgentReady');
      return c && match(c) ? c : undefined;
    },
    120_000,
  );
}

/** A serving key that is not a key, read by the agent pods started after it. */
async function breakKey(database = 'cache'): Promise<void> {
  const patch = JSON.stringify({ data: { 'tls.key': Buffer.from('not a key\n').toString('base64') } });
  await env.plane.kubectl(['patch', 'secret', agentTlsSecretName(database), '-n', NS, '-p', patch]);
}

/** Warning Events on Database `name` with `reason`: their messages. */
function warnings(name: string, reason: string): Promise<string> {
  const selector = `involvedObject.kind=Database,involvedObject.name=${name},type=Warning,reason=${reason}`;
  return eventsOf(env, NS, selector, 'jsonpath={.items[*].message}');
}

async function agentPods(database: string): Promise<Pods> {
  const selector = `app.kubernetes.io/instance=${agentName(database)}`;
  return JSON.parse(await env.plane.kubectl(['get', 'pods', '-n', NS, '-l', selector, '-o', 'json'])) as Pods;
}

it('says in AgentReady and an Event that the agent crash-loops, and why, then recovers', async () => {
  await agentReady((c) => c.reason === 'AgentAvailable', 'the agent serving');
  const secret = (await env.get<Secret>('secret', agentTlsSecretName('cache'), NS))!;
  const goodKey = secret.data['tls.key']!;

  await breakKey();
  // The key is read at start: roll the pods, as `kubectl rollout restart` does.
  await env.plane.kubectl(['rollout', 'restart', `deployment/${DEPLOYMENT}`, '-n', NS]);
  const crash = await agentReady(
    (c) => c.reason === 'AgentCrashLooping' && c.message.includes('tls.keyFile'),
    'AgentReady=False AgentCrashLooping',
  );
  expect(crash.status).toBe('False');
  expect(crash.message).toMatch(
    new RegExp(
      `^0/1 agent replicas ready: pod ${DEPLOYMENT}-[0-9a-f]+-[0-9a-f]+ container agent (is crash-looping|exited), ` +
        'restarted \\d+ times?; last exit code 1 at \\S+: tls\\.keyFile \\S+/tls\\.key: not the PEM private key ' +
        `of the serving certificate; fix: these files come from Secret ${NS}/${agentTlsSecretName('cache')}, ` +
        'which the controller keeps: delete it and the controller issues a new certificate and key',
    ),
  );
  expect(crash.message).toContain('5 times in a row');
  // Neither the bad file's content nor the real key (which the agent never read out) is in it.
  const keyPem = Buffer.from(goodKey, 'base64').toString('utf8');
  expect(crash.message).not.toContain('not a key');
  expect(crash.message).not.toContain(keyPem.split('\n')[1]!);
  expect(crash.message).not.toContain('PRIVATE KEY-----');

  // What a person sees first: the reason, and with -o wide why.
  const wide = await env.plane.kubectl(['get', 'drawdb', 'cache', '-n', NS, '-o', 'wide']);
  expect(wide).toMatch(
    /\bFalse\s+AgentCrashLooping\b.*AgentReady: 0\/1 agent replicas ready: pod .*tls\.keyFile/,
  );

  // Ready carries the same reason, and the change was told as a Warning Event on the Database.
  const db = (await env.get<Obj>('database', 'cache', NS))!;
  expect(db.status!.conditions!.find((c) => c.type === 'Ready')).toMatchObject({
    status: 'False',
    reason: 'AgentCrashLooping',
  });
  await eventually('a Warning Event AgentCrashLooping', async () => {
    const out = await warnings('cache', 'AgentCrashLooping');
    return out.includes('tls.keyFile') && !out.includes('not a key');
  });

  // The pod itself shows it as a kubelet would.
  const pods = await agentPods('cache');
  const crashed = pods.items.flatMap((p) => p.status.containerStatuses ?? []).find((c) => c.restartCount > 0);
  expect(crashed?.lastState.terminated).toMatchObject({
    exitCode: 1,
    message: expect.stringContaining('tls.keyFile') as unknown,
  });

  await env.plane.kubectl(['delete', 'secret', agentTlsSecretName('cache'), '-n', NS]);
  const back = await agentReady((c) => c.reason === 'AgentAvailable', 'AgentAvailable again');
  expect(back).toMatchObject({ status: 'True', message: '1/1 agent replicas ready' });
}, 300_000);

it('a second replica crash-looping while the first serves: still Ready, AgentDegraded naming it, a Warning Event', async () => {
  // A real backend this time, so that the Database is Ready and stays Ready.
  const redis = await startRedis();
  onTestFinished(() => redis.stop());
  const spec = {
    protocol: 'redis',
    uri: `redis://127.0.0.1:${redis.plainPort}`,
    tls: { mode: 'disabled' },
    auth: { type: 'passthrough' },
    agent: { workers: 2, replicas: 1 },
  };
  const db = {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'Database',
    metadata: { name: 'pair', namespace: NS },
  };
  await env.apply([{ ...db, spec }]);
  await agentReady((c) => c.reason === 'AgentAvailable', 'the first replica serving', 'pair');

  // The running replica keeps the key it read; the second one, added now, reads the broken one.
  await breakKey('pair');
  await env.apply([{ ...db, spec: { ...spec, agent: { ...spec.agent, replicas: 2 } } }]);
  const degraded = await agentReady(
    (c) => c.reason === 'AgentDegraded' && c.message.includes('tls.keyFile'),
    'AgentReady=True AgentDegraded',
    'pair',
  );
  const crashing = (await agentPods('pair')).items.find((p) =>
    p.status.containerStatuses?.some((c) => c.restartCount > 0),
  )!;
  const failing = new RegExp(
    `^1/2 agent replicas ready; pod ${crashing.metadata.name} container agent (is crash-looping|exited), ` +
      'restarted \\d+ times?; last exit code 1 at \\S+: tls\\.keyFile ',
  );
  expect(degraded).toMatchObject({ status: 'True', message: expect.stringMatching(failing) as unknown });
  const ready = (await env.get<Obj>('database', 'pair', NS))!.status!.conditions!.find(
    (c) => c.type === 'Ready',
  );
  expect(ready).toMatchObject({ status: 'True', reason: 'Ready' });
  expect(ready!.message).toContain(`; AgentReady: 1/2 agent replicas ready; pod ${crashing.metadata.name} `);

  const told = await eventually('a Warning Event AgentDegraded', async () => {
    const out = await warnings('pair', 'AgentDegraded');
    return out.includes(crashing.metadata.name) && out;
  });
  expect(told).toContain('tls.keyFile');
  expect(told).not.toContain('not a key');
  // Ready never went False, so nothing else was told as a Warning.
  expect(await warnings('pair', 'AgentCrashLooping')).toBe('');

  await env.plane.kubectl(['delete', 'secret', agentTlsSecretName('pair'), '-n', NS]);
  // A new certificate rolls both pods; the condition passes 1/2 AgentAvailable on the way.
  const back = await agentReady(
    (c) => c.reason === 'AgentAvailable' && c.message === '2/2 agent replicas ready',
    'both replicas serving',
    'pair',
  );
  expect(back.status).toBe('True');
}, 300_000);
