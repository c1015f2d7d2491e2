// A tenant's spec.agent.podLabels / podAnnotations must not switch off the shipping of its agent's
// audit log (stdout): keys the platform forbids (agents.forbiddenPodMetadataKeys) never reach the pod
// template, the Database says which and why, and such keys found on the live template are removed.
import { beforeAll, describe, expect, it } from 'vitest';
import { parseControllerConfig } from '../../../src/api/controller-config.js';
import { DEFAULT_FORBIDDEN_POD_METADATA_KEYS } from '../../../src/api/database-agent.js';
import type { KubeObject } from '../../../src/kube/types.js';
import type { AgentSettings } from '../../../src/operator/database/manifests.js';
import { type KeyPairPem, createCA } from '../../../src/pki/ca.js';
import { type RecordingWriter, database, reconcileOnce, writtenStatus } from './fakes.js';

let ca: KeyPairPem;
beforeAll(async () => {
  ca = await createCA({ commonName: 'test' });
});

const HOSTILE = {
  podAnnotations: {
    'fluentbit.io/exclude': 'true',
    'co.elastic.logs/enabled': 'false',
    'ad.datadoghq.com/logs_exclude': 'true',
    'example.com/team': 'orders',
  },
  podLabels: { 'vector.dev/exclude': 'true', cost: 'orders' },
};

const REDIS = { protocol: 'redis', uri: 'redis://db:6379' };
const withAgent = (agent: object, status?: object): KubeObject => ({
  ...database({ ...REDIS, agent }),
  ...(status ? { status } : {}),
});

const run = (db: KubeObject, agent: Partial<AgentSettings> = {}, live?: KubeObject) =>
  reconcileOnce(ca, db, agent, live);
const status = writtenStatus;

type Template = { metadata: { labels: Record<string, string>; annotations: Record<string, string> } };
function template(writer: RecordingWriter): Template['metadata'] {
  const w = writer.writes.find((x) => x.op === 'apply' && x.kind === 'Deployment');
  if (w?.op !== 'apply') throw new Error('no Deployment applied');
  return (w.obj.spec as { template: Template }).template.metadata;
}

describe('forbidden agent pod metadata', () => {
  it('deploys the agent without the log-exclusion keys a Database sets, and says which and why', async () => {
    const { writer, events, done } = run(withAgent(HOSTILE));
    await done;
    const meta = template(writer);
    expect(Object.keys(meta.annotations).sort()).toEqual(['drawbridge.dev/tls-digest', 'example.com/team']);
    expect(meta.labels).toMatchObject({ cost: 'orders' });
    expect(meta.labels['vector.dev/exclude']).toBeUndefined();

    const { conditions } = status(writer);
    const c = conditions.find((x) => x.type === 'PodMetadataAllowed')!;
    expect(c).toMatchObject({ status: 'False', reason: 'PodMetadataForbidden' });
    for (const key of ['fluentbit.io/exclude', 'co.elastic.logs/enabled', 'ad.datadoghq.com/logs_exclude']) {
      expect(c.message).toContain(`spec.agent.podAnnotations["${key}"]`);
    }
    expect(c.message).toContain('spec.agent.podLabels["vector.dev/exclude"] (matches "vector.dev/*")');
    expect(c.message).toContain('Helm value agents.forbiddenPodMetadataKeys');
    // The agent serves, audited: Ready is not held back by it.
    expect(conditions[0]).toMatchObject({ type: 'Ready', reason: 'AgentDeploying' });
    expect(events.events.filter((e) => e.type === 'Warning')).toEqual([
      { type: 'Warning', reason: 'PodMetadataForbidden', message: c.message },
    ]);

    // Told once: the next reconcile with that status records nothing new.
    const again = run(withAgent(HOSTILE, status(writer)));
    await again.done;
    expect(again.events.events.filter((e) => e.type === 'Warning')).toEqual([]);
  });

  it("keeps the platform's own agents.pod keys, which a Database cannot override", async () => {
    const pod = { podAnnotations: { 'co.elastic.logs/json.keys_under_root': 'true' } };
    const db = withAgent({ podAnnotations: { 'co.elastic.logs/json.keys_under_root': 'false' } });
    const { writer, done } = run(db, { pod });
    await done;
    expect(template(writer).annotations['co.elastic.logs/json.keys_under_root']).toBe('true');
    expect(status(writer).conditions.find((x) => x.type === 'PodMetadataAllowed')).toMatchObject({
      status: 'False',
    });
  });

  it('takes the configured globs instead of the default list', async () => {
    const db = withAgent({
      podAnnotations: { 'fluentbit.io/parser': 'json', 'logs.example.com/drop': 'true' },
    });
    const { writer, done } = run(db, { forbiddenPodMetadataKeys: ['logs.example.com/*'] });
    await done;
    expect(template(writer).annotations).toMatchObject({ 'fluentbit.io/parser': 'json' });
    expect(template(writer).annotations['logs.example.com/drop']).toBeUndefined();

    const allowed = run(withAgent({ podAnnotations: { 'example.com/a': 'b' } }));
    await allowed.done;
    expect(status(allowed.writer).conditions.find((x) => x.type === 'PodMetadataAllowed')).toMatchObject({
      status: 'True',
      reason: 'PodMetadataAllowed',
    });
  });

  it('removes forbidden keys someone put on the live pod template, whoever set them', async () => {
    const db = withAgent({});
    const first = run(db, { pod: { podAnnotations: { 'co.elastic.logs/enabled': 'true' } } });
    await first.done;
    const applied = first.writer.writes.find((w) => w.op === 'apply' && w.kind === 'Deployment')!;
    if (applied.op !== 'apply') throw new Error('unreachable');
    const live = structuredClone(applied.obj);
    const meta = (live.spec as { template: Template }).template.metadata;
    meta.annotations['fluentbit.io/exclude'] = 'true'; // kubectl edit deployment
    meta.labels['vector.dev/exclude'] = 'true';
    meta.annotations['example.com/other'] = 'kept';

    const { writer, events, done } = run(
      db,
      { pod: { podAnnotations: { 'co.elastic.logs/enabled': 'true' } } },
      live,
    );
    await done;
    const patch = writer.writes.find((w) => w.op === 'patch' && w.kind === 'Deployment');
    expect(patch).toMatchObject({
      patch: {
        spec: {
          template: {
            metadata: {
              annotations: { 'fluentbit.io/exclude': null },
              labels: { 'vector.dev/exclude': null },
            },
          },
        },
      },
    });
    // The platform's own key and keys nobody forbids stay.
    const sent = JSON.stringify(patch);
    expect(sent).not.toContain('co.elastic.logs/enabled');
    expect(sent).not.toContain('example.com/other');
    const told = events.events.find((e) => e.reason === 'PodMetadataForbidden')?.message;
    expect(told).toMatch(
      /^removed "vector.dev\/exclude", "fluentbit.io\/exclude" from the agent Deployment drawbridge-orders/,
    );
    expect(told).toContain('agents.forbiddenPodMetadataKeys');
  });

  it('has a default list naming the well-known collectors', () => {
    expect(DEFAULT_FORBIDDEN_POD_METADATA_KEYS).toEqual(
      expect.arrayContaining(['fluentbit.io/*', 'co.elastic.logs*', 'ad.datadoghq.com/*', 'vector.dev/*']),
    );
  });
});

describe('controller config agents.forbiddenPodMetadataKeys', () => {
  it('defaults to the well-known list and refuses what is not a key glob', () => {
    const config = parseControllerConfig('agents: {}', 'controller.yaml');
    expect(config.agents?.forbiddenPodMetadataKeys).toEqual([...DEFAULT_FORBIDDEN_POD_METADATA_KEYS]);
    expect(() =>
      parseControllerConfig('agents: {forbiddenPodMetadataKeys: ["^fluent(bit)?$"]}', 'controller.yaml'),
    ).toThrow(/forbiddenPodMetadataKeys.*must be a label or annotation key/s);
  });
});
