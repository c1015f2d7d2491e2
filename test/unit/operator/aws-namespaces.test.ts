// Helm value aws.namespaces: outside the listed namespaces an AWS Database gets none of the
// controller's AWS identities — no default agent role on its ServiceAccount, no place in the IAM policy,
// no role assumed for its rotation — and says so (CredentialsReady=False AWSNamespaceNotAllowed).
// Empty keeps every namespace, as before.
import { describe, expect, it } from 'vitest';
import { ControllerAwsConfig, allowedAwsNamespaces } from '../../../src/api/controller-config.js';
import type { Database } from '../../../src/api/database.js';
import type { AwsIdentity } from '../../../src/aws/credentials.js';
import { desiredDatabases } from '../../../src/aws/discovery/found.js';
import type { BootstrapResult, RoleRef } from '../../../src/aws/iam-bootstrap.js';
import type { PolicyInputs } from '../../../src/aws/iam-statements.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { createLogger } from '../../../src/log.js';
import { IamSync } from '../../../src/operator/aws/iam-sync.js';
import { CredentialIssues } from '../../../src/operator/aws/issues.js';
import { ControllerEvents } from '../../../src/operator/aws/report.js';
import { RotationSync } from '../../../src/operator/aws/rotation-sync.js';
import {
  agentIdentityCondition,
  awsNamespaceAllowed,
  awsNamespaceCondition,
  defaultAgentRole,
} from '../../../src/operator/database/agent-identity.js';
import { type StoredDatabase, agentManifests } from '../../../src/operator/database/manifests.js';
import { ACCOUNT, databases as awsDbs, found } from '../aws/fixtures.js';
import { FakeCache, RecordingEvents, storedDatabase } from './fakes.js';

const log = createLogger('test', 'silent');
const ROLE = `arn:aws:iam::${ACCOUNT}:role/drawbridge-agents`;
const OWN = `arn:aws:iam::${ACCOUNT}:role/team-b-agent`;
const IRSA = 'eks.amazonaws.com/role-arn';
const ALLOWED = ['team-a'];

const stored = (namespace: string, auth: string, agent: object = {}) =>
  storedDatabase(auth, agent, namespace);

function saRole(db: StoredDatabase, awsNamespaces?: string[]): string | undefined {
  const settings = { image: 'img', command: ['drawbridge'], awsRoleArn: ROLE, awsNamespaces };
  const sa = agentManifests(db, settings, 'digest').find((o) => o.kind === 'ServiceAccount')!;
  return sa.metadata.annotations?.[IRSA];
}

const inNs = (ns: string) => (db: Database) =>
  ({ ...db, metadata: { ...db.metadata, namespace: ns } }) as KubeObject;

describe('aws.namespaces: the decision', () => {
  it('allows every namespace when empty, only those listed otherwise', () => {
    expect(awsNamespaceAllowed(undefined, 'team-b')).toBe(true);
    expect(awsNamespaceAllowed([], 'team-b')).toBe(true);
    expect(awsNamespaceAllowed(ALLOWED, 'team-a')).toBe(true);
    expect(awsNamespaceAllowed(ALLOWED, 'team-b')).toBe(false);
    expect(defaultAgentRole('team-b', { awsRoleArn: ROLE, awsNamespaces: ALLOWED })).toBeUndefined();
    expect(defaultAgentRole('team-a', { awsRoleArn: ROLE, awsNamespaces: ALLOWED })).toBe(ROLE);
  });

  it('puts the default agent role only on ServiceAccounts of listed namespaces; a Database’s own stays', () => {
    expect(saRole(stored('team-a', 'rds-iam'), ALLOWED)).toBe(ROLE);
    expect(saRole(stored('team-b', 'rds-iam'), ALLOWED)).toBeUndefined();
    expect(saRole(stored('team-b', 'rds-iam'), [])).toBe(ROLE);
    expect(saRole(stored('team-b', 'rds-iam', { serviceAccountAnnotations: { [IRSA]: OWN } }), ALLOWED)).toBe(
      OWN,
    );
  });

  it('reports AWSNamespaceNotAllowed naming the Helm value and the Database field', () => {
    const db = stored('team-b', 'rds-iam');
    expect(awsNamespaceCondition(db, 'team-b', ALLOWED)).toEqual({
      type: 'CredentialsReady',
      status: 'False',
      reason: 'AWSNamespaceNotAllowed',
      message: expect.stringMatching(
        /namespace team-b is not in the Helm value aws\.namespaces.*add team-b to the Helm value aws\.namespaces, or .*spec\.agent\.serviceAccountAnnotations\["eks\.amazonaws\.com\/role-arn"\]/,
      ),
    });
    // Without the namespace check it would read as a missing role, whose fix (agents.aws.roleArn) is wrong.
    expect(
      agentIdentityCondition(db, defaultAgentRole('team-b', { awsRoleArn: ROLE, awsNamespaces: ALLOWED })),
    ).toMatchObject({ reason: 'AgentIdentityMissing' });
  });

  it('says nothing for listed namespaces, self-hosted databases, or an agent role of its own', () => {
    expect(awsNamespaceCondition(stored('team-a', 'rds-iam'), 'team-a', ALLOWED)).toBeUndefined();
    expect(awsNamespaceCondition(stored('team-b', 'rds-iam'), 'team-b', [])).toBeUndefined();
    expect(awsNamespaceCondition(stored('team-b', 'passthrough'), 'team-b', ALLOWED)).toBeUndefined();
    const own = stored('team-b', 'elasticache-iam', { serviceAccountAnnotations: { [IRSA]: OWN } });
    expect(awsNamespaceCondition(own, 'team-b', ALLOWED)).toBeUndefined();
    expect(awsNamespaceCondition(stored('team-b', 'redshift'), 'team-b', ALLOWED, true)).toBeUndefined();
  });

  it("withholds the agents' role from a namespace not listed even when its Database names it as its own", () => {
    for (const named of [ROLE, ROLE.toUpperCase().replace('ARN:AWS:IAM', 'arn:aws:iam')]) {
      const borrowing = stored('team-b', 'rds-iam', { serviceAccountAnnotations: { [IRSA]: named } });
      expect(saRole(borrowing, ALLOWED)).toBeUndefined();
      expect(awsNamespaceCondition(borrowing, 'team-b', ALLOWED, false, ROLE)?.reason).toBe(
        'AWSNamespaceNotAllowed',
      );
      expect(
        saRole(stored('team-a', 'rds-iam', { serviceAccountAnnotations: { [IRSA]: named } }), ALLOWED),
      ).toBe(named);
    }
    const own = stored('team-b', 'rds-iam', { serviceAccountAnnotations: { [IRSA]: OWN } });
    expect(saRole(own, ALLOWED)).toBe(OWN);
    expect(awsNamespaceCondition(own, 'team-b', ALLOWED, false, ROLE)).toBeUndefined();
  });

  it('refuses managed ElastiCache users even with a role of their own: the controller rotates them', () => {
    const own = stored('team-b', 'elasticache-managed', { serviceAccountAnnotations: { [IRSA]: OWN } });
    expect(awsNamespaceCondition(own, 'team-b', ALLOWED)?.message).toMatch(
      /add team-b to the Helm value aws\.namespaces \(the controller rotates managed ElastiCache users itself\)$/,
    );
  });

  it('always includes the discovery namespace once a list is given', () => {
    const config = (v: object) => ControllerAwsConfig.parse(v);
    expect(allowedAwsNamespaces(undefined, 'drawbridge')).toEqual([]);
    expect(allowedAwsNamespaces(config({}), 'drawbridge')).toEqual([]);
    expect(allowedAwsNamespaces(config({ namespaces: ALLOWED }), 'drawbridge')).toEqual([
      'team-a',
      'drawbridge',
    ]);
    expect(allowedAwsNamespaces(config({ namespaces: ALLOWED, namespace: 'aws-dbs' }), 'drawbridge')).toEqual(
      ['team-a', 'aws-dbs'],
    );
    expect(() => config({ namespaces: ['Team A'] })).toThrow();
  });
});

describe('aws.namespaces: IAM bootstrap and rotation', () => {
  const dbs = [...awsDbs('rds', 1).map(inNs('team-a')), ...awsDbs('redshift', 1).map(inNs('team-b'))];

  async function planned(namespaces?: string[]): Promise<string[]> {
    const calls: Pick<PolicyInputs, 'databases'>[] = [];
    const sync = new IamSync({
      mode: 'attach',
      matchers: [],
      databases: new FakeCache(dbs),
      issues: new CredentialIssues(() => undefined),
      events: new ControllerEvents(new RecordingEvents(), undefined, log, 0),
      attach: async (inputs): Promise<BootstrapResult & { role: RoleRef }> => {
        calls.push(inputs);
        return {
          plan: { managed: [], widened: false, size: 1, inline: { Version: '2012-10-17', Statement: [] } },
          changed: true,
          managedArns: [],
          role: { account: ACCOUNT, name: 'drawbridge' },
        };
      },
      resyncMs: 300_000,
      log,
      ...(namespaces ? { namespaces } : {}),
    });
    await sync.run(0);
    return calls[0]!.databases.map((d) => d.metadata.namespace!);
  }

  it('plans the IAM policy for the listed namespaces only (all when empty)', async () => {
    expect(await planned()).toEqual(['team-a', 'team-b']);
    expect(await planned([])).toEqual(['team-a', 'team-b']);
    expect(await planned(ALLOWED)).toEqual(['team-a']);
  });

  it('assumes no role for the managed users of a namespace not listed', () => {
    const managed = (ns: string, assumeRoleArn: string) =>
      inNs(ns)(
        desiredDatabases([
          found('elasticache', ns, { region: 'us-east-1', auth: 'elasticache-managed', assumeRoleArn }),
        ])[0]!,
      );
    const started: AwsIdentity[][] = [];
    const sync = new RotationSync({
      databases: new FakeCache([managed('team-a', `${ROLE}-a`), managed('team-b', `${ROLE}-b`)]),
      start: (ids) => (started.push(ids), { stop: () => undefined }),
      log,
      namespaces: ALLOWED,
    });
    sync.run();
    expect(started).toEqual([[{ region: 'us-east-1', assumeRoleArn: `${ROLE}-a` }]]);
  });
});
