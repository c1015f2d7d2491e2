/**
 * The controller's watches survive an API server crash. kube-apiserver is killed and started again
 * (every connection drops, then connections are refused, then watches get 429 "storage is
 * (re)initializing" while the new server's caches fill), and changes made afterwards must still reach
 * the reconciler: the agent Deployment turning ready (what the node agent reports) and a new replica
 * count on the Database. The health interval is 30 minutes, so no periodic resync can stand in for a
 * watch that stayed broken.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { agentName } from '../../../src/operator/names.js';
import { type ControllerProcess, type OperatorEnv, eventually, startOperatorEnv } from './fixture.js';
import type { Condition } from './people.js';

const NS = 'restart';
const name = agentName('orders');
let env: OperatorEnv;
let controller: ControllerProcess;

const database = (replicas: number) => ({
  apiVersion: 'drawbridge.dev/v1alpha1',
  kind: 'Database',
  metadata: { name: 'orders', namespace: NS },
  spec: {
    protocol: 'postgres',
    uri: 'postgres://127.0.0.1:1',
    auth: { type: 'passthrough' },
    agent: { replicas },
  },
});

async function agentReady(): Promise<Condition | undefined> {
  const db = await env.get<{ status?: { conditions?: Condition[] } }>('database', 'orders', NS);
  return db?.status?.conditions?.find((c) => c.type === 'AgentReady');
}

beforeAll(async () => {
  env = await startOperatorEnv({ controllers: 0, namespaces: [NS], nodeAgent: false });
  controller = env.startController('controller-0', { args: ['--health-interval=30m', '--no-leader-elect'] });
  await env.apply([database(1)]);
});

afterAll(async () => {
  await env?.stop();
});

describe('after kube-apiserver restarts', () => {
  it('the controller still sees its Deployment turn ready and the Database change', async () => {
    await eventually(
      'AgentReady: being created',
      async () => (await agentReady())?.reason === 'AgentDeploying',
    );
    const deployment = await env.get<{ metadata: { generation: number } }>('deployment', name, NS);

    await env.plane.restartApiServer();
    // What a kubelet (the node agent) writes once the replica passes its probe.
    const status = { observedGeneration: deployment!.metadata.generation, replicas: 1, readyReplicas: 1 };
    await env.plane.kubectl([
      ...['patch', 'deployment', name, '-n', NS, '--subresource=status', '--type=merge'],
      ...['-p', JSON.stringify({ status: { ...status, updatedReplicas: 1, availableReplicas: 1 } })],
    ]);
    const log = () => readFileSync(controller.logPath, 'utf8');
    const failure = (what: string) => (err: Error) => {
      throw new Error(`${what}: ${err.message}\ncontroller log:\n${log().split('\n').slice(-40).join('\n')}`);
    };
    const ready = await eventually(
      'AgentReady True',
      async () => ((await agentReady())?.status === 'True' ? agentReady() : undefined),
      60_000,
    ).catch(failure('the Deployment watch did not recover'));
    expect(ready?.message).toBe('1/1 agent replicas ready');

    await env.apply([database(2)]);
    await eventually(
      'AgentReady 1/2',
      async () => (await agentReady())?.message === '1/2 agent replicas ready',
      60_000,
    ).catch(failure('the Database watch did not recover'));
    const scaled = await env.get<{ spec: { replicas: number } }>('deployment', name, NS);
    expect(scaled?.spec.replicas).toBe(2);
    // The restart did break the watches (else this test proves nothing).
    expect(log()).toMatch(/watch failed; restarting/);
    expect(controller.exited).toBe(false);
  });
});
