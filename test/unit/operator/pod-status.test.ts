// AgentReady from real-looking agent pod status (as the kubelet and scheduler of Kubernetes 1.34 write it).
import { describe, expect, it } from 'vitest';
import { agentCondition } from '../../../src/operator/database/conditions.js';
import { podProblem, terminationMessage } from '../../../src/operator/database/pod-status.js';
import type { KubeObject } from '../../../src/kube/types.js';

const AGENT_ERROR =
  'tls.keyFile /etc/drawbridge/tls/tls.key: not the PEM private key of the serving certificate\n' +
  '  fix: these files come from Secret shop/drawbridge-orders-tls, which the controller keeps: delete it and the controller issues a new certificate and key (the agent pods roll onto them)\n' +
  'agent worker exited (code 1) 5 times in a row, each within 10 s of its start: giving up\n';

function pod(name: string, status: object, extra: Partial<KubeObject['metadata']> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: 'shop', ...extra }, status };
}

const readyConditions = [
  { type: 'PodScheduled', status: 'True' },
  { type: 'Initialized', status: 'True' },
  { type: 'ContainersReady', status: 'True' },
  { type: 'Ready', status: 'True' },
];
const notReady = [
  { type: 'PodScheduled', status: 'True' },
  { type: 'Initialized', status: 'True' },
  {
    type: 'ContainersReady',
    status: 'False',
    reason: 'ContainersNotReady',
    message: 'containers with unready status: [agent]',
  },
  {
    type: 'Ready',
    status: 'False',
    reason: 'ContainersNotReady',
    message: 'containers with unready status: [agent]',
  },
];

/** A running pod whose agent container is down: `container` says how. */
const failing = (name: string, container: object) =>
  pod(name, {
    phase: 'Running',
    conditions: notReady,
    containerStatuses: [
      {
        name: 'agent',
        image: 'drawbridge:1.0',
        imageID: 'docker.io/library/drawbridge@sha256:0123',
        ready: false,
        started: false,
        ...container,
      },
    ],
  });

const crashLooping = failing('drawbridge-orders-7d9f8b6c5-x2x4q', {
  containerID: 'containerd://aa',
  restartCount: 3,
  state: {
    waiting: {
      reason: 'CrashLoopBackOff',
      message:
        'back-off 40s restarting failed container=agent pod=drawbridge-orders-7d9f8b6c5-x2x4q_shop(0c1e)',
    },
  },
  lastState: {
    terminated: {
      exitCode: 1,
      reason: 'Error',
      message: AGENT_ERROR,
      startedAt: '2026-12-06T22:00:01Z',
      finishedAt: '2026-12-06T22:00:17Z',
      containerID: 'containerd://aa',
    },
  },
});

const imagePull = pod('drawbridge-orders-6c8d7b5f4-qq9zt', {
  phase: 'Pending',
  conditions: notReady,
  containerStatuses: [
    {
      name: 'agent',
      image: 'registry.example/drawbridge:nope',
      imageID: '',
      ready: false,
      started: false,
      restartCount: 0,
      state: {
        waiting: {
          reason: 'ImagePullBackOff',
          message: 'Back-off pulling image "registry.example/drawbridge:nope"',
        },
      },
      lastState: {},
    },
  ],
});

const oomKilled = failing('drawbridge-orders-5b7c6d4e3-mm8kp', {
  restartCount: 2,
  state: {
    waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s restarting failed container=agent' },
  },
  lastState: {
    terminated: {
      exitCode: 137,
      reason: 'OOMKilled',
      startedAt: '2026-12-06T22:00:01Z',
      finishedAt: '2026-12-06T22:00:09Z',
    },
  },
});

const unschedulable = pod('drawbridge-orders-4a6b5c3d2-ll7jn', {
  phase: 'Pending',
  conditions: [
    {
      type: 'PodScheduled',
      status: 'False',
      reason: 'Unschedulable',
      message:
        '0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.',
    },
  ],
  qosClass: 'Burstable',
});

const ready = pod('drawbridge-orders-7d9f8b6c5-a1b2c', {
  phase: 'Running',
  conditions: readyConditions,
  containerStatuses: [
    {
      name: 'agent',
      ready: true,
      started: true,
      restartCount: 1, // crashed once, long ago: now serving
      state: { running: { startedAt: '2026-12-06T21:00:00Z' } },
      lastState: { terminated: { exitCode: 1, reason: 'Error', finishedAt: '2026-12-06T20:59:59Z' } },
    },
  ],
});

const starting = pod('drawbridge-orders-7d9f8b6c5-s7t8u', {
  phase: 'Pending',
  conditions: notReady,
  containerStatuses: [
    { name: 'agent', ready: false, restartCount: 0, state: { waiting: { reason: 'ContainerCreating' } } },
  ],
});

const deployment = (readyReplicas: number) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'drawbridge-orders', namespace: 'shop' },
  status: { observedGeneration: 1, replicas: 1, readyReplicas },
});

describe('AgentReady from the agent pods', () => {
  it("names the crash-looping pod, container, restarts and the agent's own error", () => {
    const c = agentCondition(deployment(0), 1, 'shop/drawbridge-orders', [crashLooping]);
    expect(c).toMatchObject({ type: 'AgentReady', status: 'False', reason: 'AgentCrashLooping' });
    expect(c.message).toBe(
      '0/1 agent replicas ready: pod drawbridge-orders-7d9f8b6c5-x2x4q container agent is crash-looping, ' +
        'restarted 3 times; last exit code 1 at 2026-12-06T22:00:17Z: ' +
        'tls.keyFile /etc/drawbridge/tls/tls.key: not the PEM private key of the serving certificate; ' +
        'fix: these files come from Secret shop/drawbridge-orders-tls, which the controller keeps: delete it and the controller issues a new certificate and key (the agent pods roll onto them); ' +
        'agent worker exited (code 1) 5 times in a row, each within 10 s of its start: giving up',
    );
  });

  it.each([
    [
      'an image that cannot be pulled, and where to fix it',
      imagePull,
      'AgentImagePullFailed',
      [
        'pod drawbridge-orders-6c8d7b5f4-qq9zt container agent: ImagePullBackOff: Back-off pulling image "registry.example/drawbridge:nope"',
        'imagePullSecrets',
      ],
    ],
    [
      'an OOM kill (not a crash), naming the memory limit',
      oomKilled,
      'AgentOOMKilled',
      [
        'container agent was killed for going over its memory limit (OOMKilled), restarted 2 times',
        'spec.agent.resources.limits.memory',
      ],
    ],
    [
      "a pod no node takes, with the scheduler's message",
      unschedulable,
      'AgentUnschedulable',
      ['cannot be scheduled: 0/3 nodes are available: 3 Insufficient cpu.'],
    ],
  ])('says %s', (_what, p, reason, fragments) => {
    const c = agentCondition(deployment(0), 1, 'shop/drawbridge-orders', [p]);
    expect(c).toMatchObject({ status: 'False', reason });
    for (const f of fragments) expect(c.message).toContain(f);
  });

  it('is AgentAvailable when a pod is ready; AgentDegraded (still True) naming a crash-looping one of a stuck roll-out', () => {
    expect(agentCondition(deployment(1), 1, 'shop/drawbridge-orders', [ready])).toEqual({
      type: 'AgentReady',
      status: 'True',
      reason: 'AgentAvailable',
      message: '1/1 agent replicas ready',
    });
    const rollout = agentCondition(deployment(1), 1, 'shop/drawbridge-orders', [ready, crashLooping]);
    expect(rollout).toMatchObject({ status: 'True', reason: 'AgentDegraded' });
    expect(rollout.message).toMatch(
      /^1\/1 agent replicas ready; pod drawbridge-orders-7d9f8b6c5-x2x4q container agent is crash-looping/,
    );
  });

  it('stays AgentPodsNotReady for pods on their way up, and skips terminating ones', () => {
    expect(agentCondition(deployment(0), 1, 'shop/drawbridge-orders', [starting])).toMatchObject({
      status: 'False',
      reason: 'AgentPodsNotReady',
    });
    const leaving = { ...crashLooping, metadata: { ...crashLooping.metadata, deletionTimestamp: 'x' } };
    expect(podProblem([leaving, starting])).toBeUndefined();
  });

  it('passes over an evicted pod (Failed for good) for its replacement', () => {
    const evicted = pod('drawbridge-orders-7d9f8b6c5-e1v2c', {
      phase: 'Failed',
      reason: 'Evicted',
      message: 'The node was low on resource: memory.',
      containerStatuses: [
        {
          name: 'agent',
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 137, reason: 'Error' } },
        },
      ],
    });
    expect(podProblem([evicted])).toBeUndefined();
    expect(agentCondition(deployment(1), 1, 'shop/drawbridge-orders', [evicted, ready]).message).toBe(
      '1/1 agent replicas ready',
    );
  });

  it('says when the API server refuses to create the pods at all (a quota, Pod Security)', () => {
    const refused = {
      ...deployment(0),
      status: {
        observedGeneration: 1,
        replicas: 0,
        conditions: [
          { type: 'Available', status: 'False', reason: 'MinimumReplicasUnavailable' },
          {
            type: 'ReplicaFailure',
            status: 'True',
            reason: 'FailedCreate',
            message:
              'pods "drawbridge-orders-7d9f8b6c5-x2x4q" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=10, limited: pods=10',
          },
        ],
      },
    };
    expect(agentCondition(refused, 1, 'shop/drawbridge-orders', [])).toEqual({
      type: 'AgentReady',
      status: 'False',
      reason: 'AgentPodsRejected',
      message:
        '0/1 agent replicas ready: the API server refuses the agent pods of shop/drawbridge-orders: pods "drawbridge-orders-7d9f8b6c5-x2x4q" is forbidden: exceeded quota: pods, requested: pods=1, used: pods=10, limited: pods=10',
    });
  });

  it('reports the most specific problem when pods differ, whatever their order', () => {
    expect(podProblem([unschedulable, crashLooping, imagePull])?.reason).toBe('AgentImagePullFailed');
    expect(podProblem([unschedulable, crashLooping])?.reason).toBe('AgentCrashLooping');
  });

  it('calls a container that exited non-zero and is not yet backing off a crash', () => {
    const exited = pod('p', {
      containerStatuses: [
        {
          name: 'agent',
          ready: false,
          restartCount: 0,
          state: { terminated: { exitCode: 2, reason: 'Error' } },
        },
      ],
    });
    expect(podProblem([exited])).toEqual({
      reason: 'AgentCrashLooping',
      message: 'pod p container agent exited, restarted 0 times; last exit code 2',
    });
  });
});

describe('terminationMessage', () => {
  it('keeps the msg of JSON log lines (the log-tail fallback) and drops a partial first line', () => {
    const tail =
      'rkers":2}\n' +
      '{"level":50,"time":1,"msg":"agent worker exited; starting it again","restartInMs":1000}\n' +
      '{"level":60,"time":2,"reason":"agent worker exited (code 1) 5 times in a row","msg":"every agent worker keeps exiting at start: giving up"}\n';
    expect(terminationMessage(tail)).toBe(
      'agent worker exited; starting it again; every agent worker keeps exiting at start: giving up (agent worker exited (code 1) 5 times in a row)',
    );
  });

  it('passes on no audit line of the tail: people’s statements are not for whoever reads the Database', () => {
    const tail =
      `ery":"SELECT * FROM patients WHERE ssn = '078-05-1120'","statement":"x"}\n` +
      `{"time":"2026-12-08T00:00:00.000Z","type":"query","sessionId":"s1","user":"alice","query":"SELECT card FROM cards WHERE pan = '4111111111111111'"}\n` +
      `{"time":"2026-12-08T00:00:00.000Z","type":"command","sessionId":"s2","user":"bob","command":"SET","args":["session:1","tok-LOGTEST"]}\n` +
      'Error: boom\n    at Object.<anonymous> (/app/dist/src/agent/agent.js:1:1)\n';
    const out = terminationMessage(tail);
    expect(out).toBe('Error: boom; at Object.<anonymous> (/app/dist/src/agent/agent.js:1:1)');
    expect(out).not.toMatch(/078-05|4111|tok-LOGTEST|alice|bob/);
  });

  it('never passes on a private key or a token some crash printed', () => {
    const key = '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----';
    const jwt = 'eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2lnbmF0dXJlc2ln';
    const out = terminationMessage(
      `crash: ${key}\nsent ${jwt} then died\n-----BEGIN EC PRIVATE KEY-----\nMHcC`,
    );
    expect(out).toBe('crash: [PEM block removed]; sent [token removed] then died; [PEM block removed]');
    expect(out).not.toMatch(/MIIE|MHcC|eyJ/);
  });

  it('keeps the end of a long message, where the last words are', () => {
    const out = terminationMessage(`${'x'.repeat(2000)}\nthe end`);
    expect(out).toHaveLength(600);
    expect(out.startsWith('…')).toBe(true);
    expect(out.endsWith('; the end')).toBe(true);
  });
});
