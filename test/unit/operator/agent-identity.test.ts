// The AWS identity of in-cluster agents: the IRSA annotation on the agent ServiceAccount (controller
// default, Database override, none for self-hosted databases), the pod template following the role,
// the AgentIdentityMissing condition, and the agents' IAM policy (connect-time calls only).
import { describe, expect, it } from 'vitest';
import { requiredGrants } from '../../../src/aws/iam-statements.js';
import { agentIdentityCondition } from '../../../src/operator/database/agent-identity.js';
import { type StoredDatabase, agentManifests } from '../../../src/operator/database/manifests.js';
import type { KubeObject } from '../../../src/kube/types.js';
import { ACCOUNT, databases } from '../aws/fixtures.js';
import { storedDatabase } from './fakes.js';

const ROLE = `arn:aws:iam::${ACCOUNT}:role/drawbridge-agents`;
const OWN = `arn:aws:iam::${ACCOUNT}:role/orders-agent`;

const stored = (auth: string, agent: object = {}) => storedDatabase(auth, agent);

function agent(db: StoredDatabase, awsRoleArn?: string) {
  const objs = agentManifests(db, { image: 'img', command: ['drawbridge'], awsRoleArn }, 'digest');
  const of = (kind: string) => objs.find((o) => o.kind === kind)!;
  const pod = (of('Deployment').spec as { template: KubeObject & { spec: Record<string, unknown> } })
    .template;
  return {
    sa: of('ServiceAccount').metadata.annotations ?? {},
    podAnnotations: pod.metadata.annotations,
    podSecurity: pod.spec.securityContext as Record<string, unknown>,
  };
}

describe('agent AWS identity', () => {
  it.each([
    ['the controller default', stored('rds-iam'), ROLE, ROLE],
    [
      'the Database override',
      stored('rds-iam', { serviceAccountAnnotations: { 'eks.amazonaws.com/role-arn': OWN } }),
      ROLE,
      OWN,
    ],
    [
      'the Database role without a default',
      stored('elasticache-managed', { serviceAccountAnnotations: { 'eks.amazonaws.com/role-arn': OWN } }),
      undefined,
      OWN,
    ],
  ])('annotates the agent ServiceAccount with %s, and rolls pods with the role', (_, db, def, want) => {
    const a = agent(db, def);
    expect(a.sa['eks.amazonaws.com/role-arn']).toBe(want);
    expect(a.sa['drawbridge.dev/database']).toBe('shop/orders');
    expect(a.podAnnotations).toEqual({
      'drawbridge.dev/tls-digest': 'digest',
      'drawbridge.dev/aws-role-arn': want,
    });
    expect(a.podSecurity.fsGroup).toBe(65532);
    expect(agentIdentityCondition(db, def)).toBeUndefined();
  });

  it('gives self-hosted databases no AWS role, whatever the default, but keeps their own annotations', () => {
    const a = agent(
      stored('passthrough', { serviceAccountAnnotations: { 'example.com/team': 'shop' } }),
      ROLE,
    );
    expect(a.sa).toEqual({ 'drawbridge.dev/database': 'shop/orders', 'example.com/team': 'shop' });
    expect(a.podAnnotations).toEqual({ 'drawbridge.dev/tls-digest': 'digest' });
    expect(a.podSecurity.fsGroup).toBeUndefined();
    expect(agentIdentityCondition(stored('passthrough'), undefined)).toBeUndefined();
  });

  it('reports AgentIdentityMissing, naming the Helm value and the field, when an AWS agent has no role', () => {
    expect(agentIdentityCondition(stored('redshift'), undefined)).toEqual({
      type: 'CredentialsReady',
      status: 'False',
      reason: 'AgentIdentityMissing',
      message: expect.stringMatching(
        /auth type redshift needs an AWS identity.*agents\.aws\.roleArn.*spec\.agent\.serviceAccountAnnotations\["eks\.amazonaws\.com\/role-arn"\]/,
      ),
    });
    expect(agent(stored('redshift')).sa['eks.amazonaws.com/role-arn']).toBeUndefined();
  });

  it('requires no annotation when EKS Pod Identity gives the agents their role', () => {
    expect(agentIdentityCondition(stored('redshift'), undefined, true)).toBeUndefined();
    expect(agentIdentityCondition(stored('redshift'), undefined, false)?.message).toMatch(
      /agents\.aws\.podIdentity=true/,
    );
  });
});

describe("the agents' IAM policy", () => {
  const actionsOf = (grants: { actions: string[] }[]) =>
    [...new Set(grants.flatMap((g) => g.actions))].sort();

  it('holds connect-time calls only, a subset of what the controller role gets', () => {
    const dbs = [...databases('rds', 1), ...databases('elasticache', 1), ...databases('redshift', 1)];
    const agents = requiredGrants({ databases: dbs, matchers: [], defaultAccount: ACCOUNT, agents: true });
    expect(actionsOf(agents)).toEqual([
      'elasticache:Connect',
      'elasticache:DescribeUsers',
      'rds-db:connect',
      'redshift:GetClusterCredentials',
      'redshift:GetClusterCredentialsWithIAM',
    ]);
    const controller = requiredGrants({ databases: dbs, matchers: [], defaultAccount: ACCOUNT });
    const controllerPairs = new Set(controller.flatMap((g) => g.actions.map((a) => `${a} ${g.resource}`)));
    for (const g of agents)
      for (const a of g.actions) expect(controllerPairs).toContain(`${a} ${g.resource}`);
  });

  it('reads managed passwords without writing them, and only assumes a Database’s assumeRoleArn', () => {
    const [managed] = databases('elasticache', 1);
    managed!.spec.auth = { type: 'elasticache-managed' };
    const [assumed] = databases('rds', 1);
    assumed!.spec.aws!.assumeRoleArn = OWN;
    const grants = requiredGrants({
      databases: [managed!, assumed!],
      matchers: [],
      defaultAccount: ACCOUNT,
      agents: true,
    });
    expect(grants).toEqual([
      {
        actions: ['secretsmanager:GetSecretValue'],
        resource: `arn:aws:secretsmanager:us-east-1:${ACCOUNT}:secret:drawbridge/elasticache/*`,
      },
      { actions: ['sts:AssumeRole'], resource: OWN },
    ]);
  });
});
