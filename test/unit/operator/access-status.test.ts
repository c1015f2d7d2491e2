import { describe, expect, it } from 'vitest';
import { AccessRole, DatabaseUser } from '../../../src/api/access.js';
import { accessCounts, roleProblems } from '../../../src/operator/access/check.js';
import { AccessRoleReconciler, DatabaseUserReconciler } from '../../../src/operator/access/reconciler.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { createLogger } from '../../../src/log.js';
import { FakeCache, RecordingEvents, RecordingWriter } from './fakes.js';

const NS = 'shop';
const log = createLogger('test', 'silent');

const role = (name: string, spec: object): KubeObject => ({
  metadata: { name, namespace: NS, generation: 1 },
  spec,
});
const user = (name: string, roles: string[], traits: object = {}): KubeObject => ({
  metadata: { name, namespace: NS, generation: 1 },
  spec: { subjects: [{ kind: 'User', name }], roles, traits },
});
const database = (name: string, labels: Record<string, string>): KubeObject => ({
  metadata: { name, namespace: NS, labels },
  spec: {},
});
const parseRole = (o: KubeObject) =>
  AccessRole.parse({ ...o, apiVersion: 'drawbridge.dev/v1alpha1', kind: 'AccessRole' });
const parseUser = (o: KubeObject) =>
  DatabaseUser.parse({ ...o, apiVersion: 'drawbridge.dev/v1alpha1', kind: 'DatabaseUser' });

const readers = role('readers', {
  allow: { databaseLabels: { env: ['prod', 'staging'] }, databaseUsers: ['{{traits.dbUsers}}'] },
  deny: { databaseLabels: { tier: 'secret' } },
});

describe('roleProblems', () => {
  it.each<[string, object, RegExp | undefined]>([
    ['well-formed', readers.spec!, undefined],
    [
      'a broken regex',
      { allow: { databaseLabels: { env: '^eu-(west$' } } },
      /allow\.databaseLabels\.env: "\^eu-\(west\$" is not a valid regular expression/,
    ],
    [
      'half a regex',
      { deny: { databaseUsers: ['^admin'] } },
      /deny\.databaseUsers: "\^admin" is matched literally: a regular expression needs both \^ and \$/,
    ],
    [
      'an unknown template',
      { allow: { databaseUsers: ['{{user.name}}'] } },
      /allow\.databaseUsers: "\{\{user\.name\}\}": templates are \{\{traits\.NAME\}\}/,
    ],
    ['a Teleport template', { allow: { databaseNames: ['{{internal.db_names}}'] } }, undefined],
  ])('%s', (_n, spec, message) => {
    const problems = roleProblems(parseRole(role('r', spec)));
    if (message) expect(problems.map((p) => p.message).join('; ')).toMatch(message);
    else expect(problems).toEqual([]);
  });
});

describe('accessCounts', () => {
  const policy = {
    roles: [parseRole(readers), parseRole(role('nothing', {}))],
    users: [
      parseUser(user('alice', ['readers'], { dbUsers: ['alice'] })),
      parseUser(user('bob', ['readers'])), // no dbUsers trait: the template grants him no database user
      parseUser(user('carol', ['missing'], { dbUsers: ['carol'] })),
    ],
  };
  it.each<[Record<string, string>, { users: number; roles: number }]>([
    [{ env: 'prod' }, { users: 1, roles: 1 }],
    [
      { env: 'prod', tier: 'secret' },
      { users: 0, roles: 0 },
    ],
    [{ env: 'dev' }, { users: 0, roles: 0 }],
  ])('%j', (labels, want) => expect(accessCounts(policy, labels)).toEqual(want));
});

function setup(objects: { roles?: KubeObject[]; users?: KubeObject[]; databases?: KubeObject[] }) {
  const deps = {
    roles: new FakeCache(objects.roles),
    users: new FakeCache(objects.users),
    databases: new FakeCache(objects.databases),
    writer: new RecordingWriter(),
    events: new RecordingEvents(),
    log,
  };
  return { deps, role: new AccessRoleReconciler(deps), user: new DatabaseUserReconciler(deps) };
}

type Patch = {
  status: { conditions: { type: string; status: string; reason: string; message: string }[] } & Record<
    string,
    unknown
  >;
};
const status = (w: RecordingWriter, i = 0) => (w.writes[i] as { patch: Patch }).patch.status;

describe('AccessRole and DatabaseUser status', () => {
  it('a DatabaseUser naming a missing role: Ready=False RoleNotFound, a Warning naming the role', async () => {
    const { deps, user: rec } = setup({ roles: [readers], users: [user('carol', ['readers', 'writers'])] });
    await rec.reconcile(`${NS}/carol`);
    const s = status(deps.writer);
    expect(s.conditions.find((c) => c.type === 'Ready')).toMatchObject({
      status: 'False',
      reason: 'RoleNotFound',
    });
    expect(s.conditions.find((c) => c.type === 'Valid')).toMatchObject({ status: 'True' });
    expect(deps.events.events).toEqual([
      {
        type: 'Warning',
        reason: 'RoleNotFound',
        message: expect.stringContaining('AccessRole "writers" not found in namespace shop'),
      },
    ]);
  });

  it('writes nothing when the status already says it', async () => {
    const { deps, role: rec } = setup({
      roles: [readers],
      users: [user('alice', ['readers'], { dbUsers: ['a'] })],
      databases: [database('orders', { env: 'prod' })],
    });
    await rec.reconcile(`${NS}/readers`);
    const s = status(deps.writer);
    expect(s).toMatchObject({ users: 1, databases: 1, observedGeneration: 1 });
    expect(s.conditions.map((c) => `${c.type}=${c.status}`)).toEqual(['Ready=True', 'Valid=True']);
    deps.roles.put({ ...readers, status: s });
    await rec.reconcile(`${NS}/readers`);
    expect(deps.writer.writes).toHaveLength(1);
  });

  it('an AccessRole with a broken pattern, and the DatabaseUser holding it', async () => {
    const broken = role('broken', { allow: { databaseLabels: { env: '^(prod$' }, databaseUsers: ['x'] } });
    const { deps, role: r, user: u } = setup({ roles: [broken], users: [user('dave', ['broken'])] });
    await r.reconcile(`${NS}/broken`);
    expect(status(deps.writer).conditions[1]).toMatchObject({
      type: 'Valid',
      status: 'False',
      reason: 'InvalidPattern',
    });
    await u.reconcile(`${NS}/dave`);
    expect(status(deps.writer, 1).conditions[0]).toMatchObject({ status: 'False', reason: 'RoleInvalid' });
  });

  it('a spec the schema refuses (stored under an older CRD) names the field', async () => {
    const bad = { metadata: { name: 'eve', namespace: NS }, spec: { subjects: [], roles: ['readers'] } };
    const { deps, user: rec } = setup({ roles: [readers], users: [bad] });
    await rec.reconcile(`${NS}/eve`);
    expect(status(deps.writer).conditions[0]).toMatchObject({
      status: 'False',
      reason: 'InvalidSpec',
      message: expect.stringMatching(/^fix the DatabaseUser: spec\.subjects: /),
    });
  });

  it('an AccessRole the schema refuses says its people are denied until it is fixed', async () => {
    const users65 = Array.from({ length: 65 }, (_, i) => `u${i}`);
    const bad = { metadata: { name: 'huge', namespace: NS }, spec: { deny: { databaseUsers: users65 } } };
    const { deps, role: rec } = setup({ roles: [bad] });
    await rec.reconcile(`${NS}/huge`);
    expect(status(deps.writer).conditions[0]).toMatchObject({
      status: 'False',
      reason: 'InvalidSpec',
      message: expect.stringMatching(
        /^fix the AccessRole: spec\.deny\.databaseUsers: .*every session of those bound to it is denied$/,
      ),
    });
  });
});
