/**
 * Helm networkPolicy.enabled against a real API server: the controller, given the chart's
 * controller.yaml settings, puts a NetworkPolicy beside the agent in the Database's namespace, leaves it
 * alone once it matches (no apply on every reconcile), and removes it when the setting goes away.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { agentName } from '../../../src/operator/names.js';
import { type ControllerProcess, type OperatorEnv, eventually, startOperatorEnv } from './fixture.js';

const NS = 'fenced';
const NAME = agentName('orders');
let env: OperatorEnv;

type Policy = { metadata: { resourceVersion: string }; spec: { ingress: { from?: object[] }[] } };

beforeAll(async () => {
  env = await startOperatorEnv({ controllers: 0, namespaces: [NS], nodeAgent: false });
  await env.apply([
    {
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'orders', namespace: NS },
      spec: { protocol: 'postgres', uri: 'postgres://127.0.0.1:1', auth: { type: 'passthrough' } },
    },
  ]);
}, 120_000);

afterAll(async () => {
  await env?.stop();
});

async function stop(c: ControllerProcess): Promise<void> {
  const gone = new Promise((r) => c.child.once('exit', r));
  c.child.kill('SIGTERM');
  await gone;
}

it('puts a NetworkPolicy beside the agent while enabled, and takes it away after', async () => {
  const config = path.join(env.plane.dir, 'controller.yaml');
  const monitoring = { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } };
  const clients = { namespaceSelector: { matchLabels: { team: 'a' } } };
  await writeFile(
    config,
    stringify({ agents: { networkPolicy: { clients: [clients], metricsFrom: [monitoring] } } }),
  );
  const on = env.startController('np-on', { args: [`--config=${config}`] });
  const policy = await eventually('agent NetworkPolicy', () => env.get<Policy>('networkpolicy', NAME, NS));
  expect(policy.spec.ingress.map((r) => r.from)).toEqual([
    [
      clients,
      { podSelector: { matchLabels: expect.objectContaining({ 'app.kubernetes.io/instance': NAME }) } },
    ],
    [monitoring],
  ]);
  // Reconciles every 3 s (--health-interval): a policy that matches is not written again.
  await sleep(7000);
  expect((await env.get<Policy>('networkpolicy', NAME, NS))?.metadata.resourceVersion).toBe(
    policy.metadata.resourceVersion,
  );
  await stop(on);

  env.startController('np-off');
  await eventually('NetworkPolicy removed', async () => !(await env.get('networkpolicy', NAME, NS)));
}, 120_000);
