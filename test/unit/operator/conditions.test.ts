import { describe, expect, it } from 'vitest';
import { Database } from '../../../src/api/database.js';
import {
  type ConditionState,
  agentCondition,
  mergeConditions,
  readyCondition,
} from '../../../src/operator/database/conditions.js';
import { type SecretLookup, checkCredentials } from '../../../src/operator/database/health.js';

const t = (type: ConditionState['type'], status: ConditionState['status'], reason = 'R'): ConditionState =>
  ({ type, status, reason, message: `${type} ${status}` }) as ConditionState;

describe('conditions', () => {
  it('keeps lastTransitionTime while a status holds and stamps a change', () => {
    const before = [{ ...t('AgentReady', 'True'), lastTransitionTime: '2020-01-01T00:00:00Z' }];
    const now = new Date('2026-01-01T00:00:00Z');
    expect(mergeConditions(before, [t('AgentReady', 'True', 'Other')], 4, now)[0]).toMatchObject({
      lastTransitionTime: '2020-01-01T00:00:00Z',
      reason: 'Other',
      observedGeneration: 4,
    });
    expect(mergeConditions(before, [t('AgentReady', 'False')], 4, now)[0]!.lastTransitionTime).toBe(
      '2026-01-01T00:00:00Z',
    );
  });

  it.each([
    [['True', 'True', 'True'], 'True', 'Ready'],
    [['True', 'False', 'True'], 'False', 'B'],
    [['Unknown', 'False', 'True'], 'False', 'B'],
    [['Unknown', 'True', 'True'], 'Unknown', 'A'],
  ] as const)('Ready from %j is %s (%s)', (statuses, status, reason) => {
    const parts = [
      t('AgentReady', statuses[0], 'A'),
      t('BackendReachable', statuses[1], 'B'),
      t('CredentialsReady', statuses[2], 'C'),
    ];
    expect(readyCondition(parts, 'svc:5432')).toMatchObject({ type: 'Ready', status, reason });
  });

  it('Ready stays True and Ready while the agent is degraded, and says why', () => {
    const agent = { ...t('AgentReady', 'True', 'AgentDegraded'), message: '1/2 agent replicas ready; pod p' };
    const parts = [agent, t('BackendReachable', 'True'), t('CredentialsReady', 'True')];
    expect(readyCondition(parts, 'svc:5432')).toEqual({
      type: 'Ready',
      status: 'True',
      reason: 'Ready',
      message: 'agent serving at svc:5432; AgentReady: 1/2 agent replicas ready; pod p',
    });
  });

  it.each([
    ['no Deployment yet', undefined, 1, 'Unknown', 'AgentDeploying'],
    ['not observed yet', { status: {} }, 1, 'Unknown', 'AgentDeploying'],
    [
      'no ready pods',
      { status: { observedGeneration: 1, readyReplicas: 0 } },
      1,
      'False',
      'AgentPodsNotReady',
    ],
    [
      'one of two ready',
      { status: { observedGeneration: 1, readyReplicas: 1 } },
      2,
      'True',
      'AgentAvailable',
    ],
    ['scaled to zero', undefined, 0, 'False', 'AgentScaledToZero'],
  ])('AgentReady when %s', (_n, deployment, wanted, status, reason) => {
    const d = deployment && { metadata: { name: 'x' }, ...deployment };
    expect(agentCondition(d, wanted, 'shop/x')).toMatchObject({ status, reason });
  });
});

describe('checkCredentials', () => {
  const db = (spec: object) =>
    Database.parse({
      apiVersion: 'drawbridge.dev/v1alpha1',
      kind: 'Database',
      metadata: { name: 'd', namespace: 'shop' },
      spec: { protocol: 'postgres', uri: 'postgres://db', ...spec },
    });
  const password = { auth: { type: 'password', secretRef: { name: 'pw' } } };
  const mtls = { auth: { type: 'mtls', secretRef: { name: 'cert' } } };
  const ca = {
    tls: { mode: 'verify-full', caSecretRef: { name: 'ca', key: 'ca.crt' } },
    auth: { type: 'passthrough' },
  };
  it.each<[string, object, [string, SecretLookup][], string, string]>([
    ['password Secret with users', password, [['pw', { alice: 'x' }]], 'True', 'SecretFound'],
    ['password Secret missing', password, [], 'False', 'SecretNotFound'],
    ['password Secret empty', password, [['pw', {}]], 'False', 'SecretKeyMissing'],
    ['mtls without tls.key', mtls, [['cert', { 'tls.crt': 'c' }]], 'False', 'SecretKeyMissing'],
    ['mtls complete', mtls, [['cert', { 'tls.crt': 'c', 'tls.key': 'k' }]], 'True', 'SecretFound'],
    ['unreadable Secret', password, [['pw', new Error('forbidden')]], 'Unknown', 'SecretUnreadable'],
    ['CA Secret missing', ca, [], 'False', 'CASecretNotFound'],
    ['CA Secret without the key', ca, [['ca', { other: 'x' }]], 'False', 'CASecretNotFound'],
    ['passthrough with its CA', ca, [['ca', { 'ca.crt': 'pem' }]], 'True', 'Passthrough'],
    [
      'cloud identity',
      { auth: { type: 'rds-iam' }, aws: { type: 'rds', region: 'eu-west-1' } },
      [],
      'True',
      'CredentialsFromCloudIdentity',
    ],
  ])('%s', (_n, spec, secrets, status, reason) => {
    expect(checkCredentials(db(spec), new Map(secrets))).toMatchObject({
      type: 'CredentialsReady',
      status,
      reason,
    });
  });
});
