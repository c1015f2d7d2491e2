/**
 * An agent's watches must not outlive their connections. The agent's state source (the watches an
 * in-cluster agent enforces access from) talks to a real kube-apiserver through a TCP proxy that then
 * goes silent on every connection it holds, as when a NAT/conntrack entry is dropped or a middlebox
 * keeps a dead connection open: no FIN, no RST, nothing forwarded, not even the server ending the
 * watch. A DatabaseUser deleted meanwhile must still reach the agent once the watches' deadline
 * (timeoutSeconds plus grace, short here) abandons the silent connections and new ones are opened.
 * Before the deadline existed, the watches waited forever and the revoked user kept access.
 */
import * as k8s from '@kubernetes/client-node';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type StateSource, watchAgentState } from '../../../src/agent/incluster-watch.js';
import { AgentMetrics } from '../../../src/agent/metrics.js';
import type { StateSnapshot } from '../../../src/agent/state.js';
import { KubeClient } from '../../../src/kube/client.js';
import { kubeConfigCredentials } from '../../../src/kube/credentials.js';
import { type ControlPlane, startControlPlane } from '../../k8s/controlplane.js';
import { type BlackholeProxy, blackholeProxy } from '../../support/blackhole-proxy.js';

const NS = 'blackhole';
const TIMEOUT_SECONDS = 3;
const GRACE_MS = 1000;

let plane: ControlPlane;
let proxy: BlackholeProxy;
let client: KubeClient;
let source: StateSource | undefined;
const logged: { msg: string; err?: string; kind?: string; staleMs?: number }[] = [];

const person = (name: string) => ({
  apiVersion: 'drawbridge.dev/v1alpha1',
  kind: 'DatabaseUser',
  metadata: { name, namespace: NS },
  spec: { subjects: [{ kind: 'User', name }], roles: ['dev'], traits: { dbUsers: [name] } },
});
const docs = [
  {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'Database',
    metadata: { name: 'orders', namespace: NS },
    spec: { protocol: 'postgres', uri: 'postgres://127.0.0.1:1', auth: { type: 'passthrough' } },
  },
  {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'AccessRole',
    metadata: { name: 'dev', namespace: NS },
    spec: { allow: { databaseLabels: { '*': '*' }, databaseUsers: ['{{traits.dbUsers}}'] } },
  },
  person('alice'),
  person('bob'),
];

beforeAll(async () => {
  plane = await startControlPlane();
  await plane.kubectl(['apply', '-f', 'crds']);
  await plane.kubectl(['create', 'namespace', NS]);
  await plane.kubectl(['apply', '-f', '-'], { input: docs.map((d) => JSON.stringify(d)).join('\n') });
  const apiServer = new URL(plane.server);
  proxy = await blackholeProxy({ host: apiServer.hostname, port: Number(apiServer.port) });
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(plane.kubeconfigPath);
  // The admin's credentials, sent through the proxy (the serving certificate names 127.0.0.1).
  const credentials = await kubeConfigCredentials(kc);
  const server = new URL(`https://127.0.0.1:${proxy.port}`);
  client = new KubeClient(
    { server, tls: credentials.tls, headers: () => credentials.headers() },
    { watchTimeoutSeconds: () => TIMEOUT_SECONDS, watchGraceMs: GRACE_MS },
  );
}, 300_000);

afterAll(async () => {
  await source?.stop();
  await proxy?.close();
  await plane?.stop();
});

const names = (s: StateSnapshot) => s.users.map((u) => u.metadata.name).sort();

describe('a watch whose connection goes silent', () => {
  it('is abandoned after its deadline and watched again: a user deleted meanwhile is revoked', async () => {
    const log = pino({ level: 'info' }, { write: (line: string) => void logged.push(JSON.parse(line)) });
    const updates: StateSnapshot[] = [];
    source = await watchAgentState({ database: `${NS}/orders`, client, log });
    source.onUpdate((next) => updates.push(next));
    const metrics = new AgentMetrics();
    metrics.observeState(source);
    const stale = async () => (await metrics.stateStale.get()).values[0]?.value;
    expect(await stale()).toBe(0);
    expect(names(source.initial)).toEqual(['alice', 'bob']);
    // The Database, AccessRole and DatabaseUser watches are open (and the lists' pooled connection).
    await expect.poll(() => proxy.connections).toBeGreaterThanOrEqual(4);
    await new Promise((r) => setTimeout(r, 500));
    expect(proxy.blackholeOpen()).toBeGreaterThanOrEqual(3);

    await plane.kubectl(['delete', 'databaseuser', 'bob', '-n', NS]);
    // Abandoned at the deadline, watched again after the backoff (0.8 s at least): stale meanwhile.
    await expect.poll(stale, { timeout: 30_000, interval: 50 }).toBeGreaterThan(0);
    await expect
      .poll(() => updates.at(-1) && names(updates.at(-1)!), { timeout: 30_000, interval: 200 })
      .toEqual(['alice']);

    const failed = logged.filter((l) => l.msg === 'watch failed; restarting');
    expect(failed.map((l) => l.err)).toContainEqual(
      expect.stringMatching(/nothing from the API server for 4000 ms .*presumed dead/),
    );
    const restored = logged.filter((l) => l.msg === 'watch restored');
    expect(restored.map((l) => l.kind)).toContain('DatabaseUser');
    for (const l of restored) expect(l.staleMs).toBeGreaterThan(0);
    await expect.poll(stale).toBe(0);
    // No line carries the admin's credentials.
    expect(JSON.stringify(logged)).not.toMatch(/BEGIN|PRIVATE KEY|Bearer/);
  });
});
