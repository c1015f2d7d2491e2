/**
 * Why the agent's pods are failing, in the Database's status and Events, against a real API server:
 * the node agent runs the agent pods as processes and writes their status as a kubelet would. An agent
 * whose serving key is not a key exits at start (its workers die, its primary gives up), the pod goes
 * into CrashLoopBackOff with the agent's own error as its last termination message, and the controller
 * turns that into AgentReady=False AgentCrashLooping naming the key file and the fix, with no secret in
 * it; doing what the fix says (deleting the Secret: the controller issues a new one) returns
 * AgentAvailable.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { agentName, agentTlsSecretName } from '../../../src/operator/names.js';
import { type OperatorEnv, eventually, startOperatorEnv } from './fixture.js';
import type { Condition } from './people.js';

const NS = 'pods';
const DEPLOYMENT = agentName('cache');
let env: OperatorEnv;

type Obj = { status?: { conditions?: Condition[] } };
type Secret = { data: Record<string, string> };
type Pods = {
  items: {
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

async function agentReady(match: (c: Condition) => boolean, what: string): Promise<Condition> {
  return eventually(
    what,
    async () => {
      const db = await env.get<Obj>('database', 'cache', NS);
      const c = db?.status?.conditions?.find((x) => x.type === 'AgentReady');
      return c && match(c) ? c : undefined;
    },
    120_000,
  );
}

/** A serving key that is not a key, read by the agent pods started after it. */
async function breakKey(): Promise<void> {
  const patch = JSON.stringify({ data: { 'tls.key': Buffer.from('not a key\n').toString('base64') } });
  await env.plane.kubectl(['patch', 'secret', agentTlsSecretName('cache'), '-n', NS, '-p', patch]);
  // The key is read at start: roll the pods, as `kubectl rollout restart` does.
  await env.plane.kubectl(['rollout', 'restart', `deployment/${DEPLOYMENT}`, '-n', NS]);
}

it('says in AgentReady and an Event that the agent crash-loops, and why, then recovers', async () => {
  await agentReady((c) => c.reason === 'AgentAvailable', 'the agent serving');
  const secret = (await env.get<Secret>('secret', agentTlsSecretName('cache'), NS))!;
  const goodKey = secret.data['tls.key']!;

  await breakKey();
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
    const out = await env.plane.kubectl([
      'get',
      'events',
      '-n',
      NS,
      '--field-selector',
      'involvedObject.kind=Database,involvedObject.name=cache,type=Warning,reason=AgentCrashLooping',
      '-o',
      'jsonpath={.items[*].message}',
    ]);
    return out.includes('tls.keyFile') && !out.includes('not a key');
  });

  // The pod itself shows it as a kubelet would.
  const pods = JSON.parse(
    await env.plane.kubectl([
      'get',
      'pods',
      '-n',
      NS,
      '-l',
      `app.kubernetes.io/instance=${DEPLOYMENT}`,
      '-o',
      'json',
    ]),
  ) as Pods;
  const crashed = pods.items.flatMap((p) => p.status.containerStatuses ?? []).find((c) => c.restartCount > 0);
  expect(crashed?.lastState.terminated).toMatchObject({
    exitCode: 1,
    message: expect.stringContaining('tls.keyFile') as unknown,
  });

  await env.plane.kubectl(['delete', 'secret', agentTlsSecretName('cache'), '-n', NS]);
  const back = await agentReady((c) => c.reason === 'AgentAvailable', 'AgentAvailable again');
  expect(back).toMatchObject({ status: 'True', message: '1/1 agent replicas ready' });
}, 300_000);
