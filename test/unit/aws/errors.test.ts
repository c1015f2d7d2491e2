import { describe, expect, it } from 'vitest';
import { AwsReason, awsCondition, classifyAwsError } from '../../../src/aws/errors.js';

function sdkError(name: string, message: string, extra: object = {}): Error {
  return Object.assign(new Error(message), { name, ...extra });
}

describe('classifyAwsError', () => {
  it.each([
    [
      sdkError('CredentialsProviderError', 'Could not load credentials from any providers'),
      'load',
      AwsReason.NoCredentials,
      /IRSA/,
    ],
    [
      sdkError('ProviderError', 'Failed to get EC2 Metadata token: TimeoutError'),
      'load',
      AwsReason.IMDSHopLimit,
      /hop limit to 2/,
    ],
    [
      sdkError(
        'AccessDenied',
        'User: arn:aws:sts::1:assumed-role/a/i is not authorized to perform: sts:AssumeRole on resource: arn:aws:iam::1:role/b',
      ),
      'sts:AssumeRole arn:aws:iam::1:role/b',
      AwsReason.AssumeRoleDenied,
      /trust policy of arn:aws:iam::1:role\/b.*sts:ExternalId/,
    ],
    [
      sdkError('AccessDeniedException', 'not authorized to perform: rds:DescribeDBInstances'),
      'rds:DescribeDBInstances',
      AwsReason.AccessDenied,
      /iam print/,
    ],
    [
      sdkError('TimeoutError', 'socket timed out'),
      'redshift:GetClusterCredentials',
      AwsReason.Unreachable,
      /outbound HTTPS/,
    ],
    [
      sdkError('Error', 'connect ECONNREFUSED', { code: 'ECONNREFUSED' }),
      'x',
      AwsReason.Unreachable,
      /outbound/,
    ],
    [sdkError('ClusterNotFoundFault', 'Cluster x not found'), 'x', AwsReason.NotFound, /identifiers/],
    [sdkError('ThrottlingException', 'Rate exceeded'), 'x', AwsReason.ApiError, /AWS error/],
  ])('%#: %s → %s', (err, action, reason, hint) => {
    const classified = classifyAwsError(err, { action, roleArn: 'arn:aws:iam::1:role/b' });
    expect(classified.reason).toBe(reason);
    expect(classified.hint).toMatch(hint);
    expect(classified.cause).toBe(err);
  });

  it('passes an already classified error through', () => {
    const once = classifyAwsError(sdkError('TimeoutError', 't'), { action: 'a' });
    expect(classifyAwsError(once, { action: 'b' })).toBe(once);
  });
});

describe('awsCondition', () => {
  it('is CredentialsReady=False with the reason and the fix', () => {
    const err = classifyAwsError(
      sdkError('CredentialsProviderError', 'Could not load credentials from any providers'),
      { action: 'load' },
    );
    const c = awsCondition(err, 'CredentialsReady', new Date('2026-01-01T00:00:00Z'));
    expect(c).toMatchObject({
      type: 'CredentialsReady',
      status: 'False',
      reason: 'NoCredentials',
      lastTransitionTime: '2026-01-01T00:00:00.000Z',
    });
    expect(c.message).toMatch(/no valid providers in chain.*Fix: .*IRSA/);
  });
});
