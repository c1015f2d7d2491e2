// AWS failures classified where they happen: each becomes a DrawbridgeError whose `reason` is the
// status-condition reason (CredentialsReady=False, reason ...) and whose hint names the fix — the
// seeds' troubleshooting sections, turned into code.
import type { Condition } from '../api/meta.js';
import { DrawbridgeError, type ErrorCode, errorMessage } from '../errors.js';

export const AwsReason = {
  /** No provider in the SDK chain produced credentials (env, files, IRSA web identity, IMDS). */
  NoCredentials: 'NoCredentials',
  /** IMDSv2 unreachable from a pod: the node's PUT response hop limit is 1. */
  IMDSHopLimit: 'IMDSHopLimit',
  /** sts:AssumeRole refused: trust policy, external ID or permissions boundary. */
  AssumeRoleDenied: 'AssumeRoleDenied',
  /** Any other AccessDenied from an AWS API: the role's policy lacks an action. */
  AccessDenied: 'AWSAccessDenied',
  /** AWS endpoint timed out or refused the connection. */
  Unreachable: 'AWSUnreachable',
  /** The database has IAM authentication switched off. */
  IAMAuthDisabled: 'IAMAuthDisabled',
  /** The ElastiCache user does not use IAM authentication. */
  UserNotIAMEnabled: 'UserNotIAMEnabled',
  /** The AWS resource (cluster, workgroup, user, secret) does not exist. */
  NotFound: 'AWSResourceNotFound',
  /** The IAM policy Drawbridge needs does not fit the role's limits. */
  PolicySizeExceeded: 'PolicySizeExceeded',
  /** Discovered RDS/Aurora, and no Secret with the Amazon RDS CA bundle configured to verify them. */
  RDSCABundleMissing: 'RDSCABundleMissing',
  /** Anything else AWS answered with. */
  ApiError: 'AWSApiError',
} as const;
export type AwsReason = (typeof AwsReason)[keyof typeof AwsReason];

export class AwsError extends DrawbridgeError {
  constructor(
    readonly reason: AwsReason,
    message: string,
    hint: string,
    options: { cause?: unknown; code?: ErrorCode } = {},
  ) {
    super(options.code ?? 'CREDENTIALS_UNAVAILABLE', message, hint, { cause: options.cause });
    this.name = 'AwsError';
  }
}

export function isAwsError(err: unknown, reason?: AwsReason): err is AwsError {
  return err instanceof AwsError && (reason === undefined || err.reason === reason);
}

/** What was being attempted, for the message: "GetClusterCredentials on cluster my-redshift". */
export interface AwsCallContext {
  action: string;
  roleArn?: string;
}

const TIMEOUT_CODES = new Set([
  'ETIMEDOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

type ErrorLike = { name?: string; code?: string; message?: string; cause?: unknown };

/** Name, code and message of an error and its causes, for matching symptoms. */
export function errorText(err: unknown): string {
  const parts: string[] = [];
  let e = err as ErrorLike | undefined;
  for (let depth = 0; e && depth < 5; depth++) {
    parts.push(e.name ?? '', e.code ?? '', e.message ?? String(e));
    e = e.cause as ErrorLike | undefined;
  }
  return parts.join(' ');
}

function errorName(err: unknown): string {
  const e = err as { name?: string; Code?: string; code?: string } | undefined;
  return e?.name ?? e?.Code ?? e?.code ?? '';
}

/** Turns whatever the SDK threw into an AwsError; an AwsError passes through unchanged. */
export function classifyAwsError(err: unknown, ctx: AwsCallContext): AwsError {
  if (err instanceof AwsError) return err;
  const name = errorName(err);
  const text = errorMessage(err);
  const what = `${ctx.action}: ${text}`;
  if (/EC2 Metadata|IMDS|instance metadata|169\.254\.169\.254/i.test(text)) return imdsUnreachable(err, what);
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(text)) {
    return new AwsError(
      AwsReason.NoCredentials,
      `no AWS credentials: no valid providers in chain (${what})`,
      'give the pod an IAM role through IRSA (ServiceAccount annotation eks.amazonaws.com/role-arn), an ' +
        'instance profile, or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY',
      { cause: err },
    );
  }
  if (/AssumeRole/.test(ctx.action) && /AccessDenied/i.test(name + text)) {
    return new AwsError(
      AwsReason.AssumeRoleDenied,
      `not allowed to assume ${ctx.roleArn ?? 'the role'} (${what})`,
      `let the caller assume it: name its role (or account) as Principal in the trust policy of ${ctx.roleArn ?? 'the role'}` +
        ", match sts:ExternalId if the trust policy requires one, and allow sts:AssumeRole in the caller's policy " +
        'and permissions boundary; test with aws sts assume-role',
      { cause: err },
    );
  }
  if (/AccessDenied|UnauthorizedOperation|NotAuthorized/i.test(name)) {
    return new AwsError(
      AwsReason.AccessDenied,
      `AWS denied ${what}`,
      'add the permission to the role Drawbridge runs as: `drawbridge iam print` shows the policy it needs, or ' +
        'turn on IAM bootstrap in the Helm values',
      { cause: err },
    );
  }
  if (
    name === 'TimeoutError' ||
    TIMEOUT_CODES.has((err as { code?: string })?.code ?? '') ||
    /timed? ?out/i.test(text)
  ) {
    return new AwsError(
      AwsReason.Unreachable,
      `AWS did not answer ${what}`,
      'check outbound HTTPS from the pod to the AWS endpoints (security groups, NAT, VPC endpoints, proxies)',
      { cause: err, code: 'AWS_ERROR' },
    );
  }
  if (/NotFound|NoSuchEntity/i.test(name)) {
    return new AwsError(AwsReason.NotFound, what, 'check the identifiers in the Database spec.aws', {
      cause: err,
      code: 'AWS_ERROR',
    });
  }
  return new AwsError(AwsReason.ApiError, what, 'see the AWS error above', { cause: err, code: 'AWS_ERROR' });
}

/** The EC2 instance metadata service did not answer: in a pod, almost always the IMDSv2 hop limit. */
export function imdsUnreachable(cause: unknown, what = errorMessage(cause)): AwsError {
  return new AwsError(
    AwsReason.IMDSHopLimit,
    `no AWS credentials: the EC2 instance metadata service did not answer (${what})`,
    "in a pod, use IRSA (annotate the ServiceAccount with eks.amazonaws.com/role-arn) or raise the node's " +
      'IMDSv2 PUT response hop limit to 2 (aws ec2 modify-instance-metadata-options --http-put-response-hop-limit 2)',
    { cause },
  );
}

/** Runs one AWS call and classifies its failure. */
export async function awsCall<T>(ctx: AwsCallContext, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    throw classifyAwsError(err, ctx);
  }
}

/**
 * The status condition for an AWS failure, e.g. CredentialsReady=False, reason AssumeRoleDenied, with
 * the fix in the message — what the controller writes on the Database.
 */
export function awsCondition(err: unknown, type = 'CredentialsReady', now = new Date()): Condition {
  const e = err instanceof AwsError ? err : classifyAwsError(err, { action: 'AWS call' });
  return {
    type,
    status: 'False',
    reason: e.reason,
    message: e.hint ? `${e.message}. Fix: ${e.hint}` : e.message,
    lastTransitionTime: now.toISOString(),
  };
}
