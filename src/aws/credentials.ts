// AWS credentials for the agent and the controller: the SDK's default chain (env, shared files, web
// identity for IRSA, IMDS), optionally followed by `assumeRoleArn` (+ `externalId`) and a further hop
// for Redshift's `role/NAME` database users — role chaining, each hop signed by the previous one.
// Results are cached until shortly before they expire; failures come back as classified AwsErrors.
import {
  fromInstanceMetadata,
  fromNodeProviderChain,
  fromTemporaryCredentials,
} from '@aws-sdk/credential-providers';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { AwsReason, awsCall, errorText, imdsUnreachable, isAwsError } from './errors.js';

/** Where a Database (or discovery matcher) gets its AWS identity. */
export interface AwsIdentity {
  region: string;
  assumeRoleArn?: string;
  externalId?: string;
}

/** Refresh this long before expiry, so a token signed now outlives its 15-minute validity. */
const REFRESH_BEFORE_MS = 16 * 60_000;
const SESSION_NAME = 'drawbridge';

/** Caches a provider's result until REFRESH_BEFORE_MS before its expiration; one refresh at a time. */
function cached(provider: AwsCredentialIdentityProvider): AwsCredentialIdentityProvider {
  let current: AwsCredentialIdentity | undefined;
  let pending: Promise<AwsCredentialIdentity> | undefined;
  const fresh = (c: AwsCredentialIdentity) =>
    !c.expiration || c.expiration.getTime() - Date.now() > REFRESH_BEFORE_MS;
  return async () => {
    if (current && fresh(current)) return current;
    pending ??= provider().then(
      (c) => {
        current = c;
        pending = undefined;
        return c;
      },
      (err: unknown) => {
        pending = undefined;
        throw err;
      },
    );
    return pending;
  };
}

function classified(provider: AwsCredentialIdentityProvider, action: string, roleArn?: string) {
  return () => awsCall({ action, ...(roleArn ? { roleArn } : {}) }, () => provider());
}

/** Assumes `roleArn` using `source`'s credentials: one hop of a role chain. */
function assumeRole(
  source: AwsCredentialIdentityProvider,
  region: string,
  roleArn: string,
  externalId?: string,
): AwsCredentialIdentityProvider {
  const provider = fromTemporaryCredentials({
    masterCredentials: source,
    params: {
      RoleArn: roleArn,
      RoleSessionName: SESSION_NAME,
      ...(externalId ? { ExternalId: externalId } : {}),
    },
    clientConfig: { region },
  });
  return cached(classified(provider, `sts:AssumeRole ${roleArn}`, roleArn));
}

export interface ChainOptions {
  /** Per-attempt timeout for the metadata services (IMDS, ECS), in ms. */
  timeoutMs?: number;
}

/**
 * The SDK's default chain. When it finds nothing it only says "Could not load credentials from any
 * providers"; then one direct IMDS attempt tells a silent metadata service (the hop-limit symptom in
 * a pod) from plain absence, so the error can name the right fix.
 */
export function defaultChain(opts: ChainOptions = {}): AwsCredentialIdentityProvider {
  const timeout = opts.timeoutMs ?? 3000;
  const chain = fromNodeProviderChain({ timeout, maxRetries: 1 });
  return async () => {
    try {
      return await awsCall({ action: 'load AWS credentials' }, () => chain());
    } catch (err) {
      if (!isAwsError(err, AwsReason.NoCredentials) || process.env.AWS_EC2_METADATA_DISABLED === 'true')
        throw err;
      const imds = await fromInstanceMetadata({ timeout, maxRetries: 0 })().then(
        () => undefined,
        (e: unknown) => e,
      );
      if (imds && /time(d)? ?out|ETIMEDOUT|ECONNRESET|socket hang up/i.test(errorText(imds)))
        throw imdsUnreachable(imds);
      throw err;
    }
  };
}

/** Process-wide credential cache: one base chain, one provider per (region, role, external ID). */
export class AwsCredentials {
  private readonly base: AwsCredentialIdentityProvider;
  private readonly byIdentity = new Map<string, AwsCredentialIdentityProvider>();

  constructor(base: AwsCredentialIdentityProvider = defaultChain()) {
    this.base = cached(base);
  }

  /** The credentials for an identity: the base chain, or the base chain then AssumeRole. */
  for(identity: AwsIdentity): AwsCredentialIdentityProvider {
    const { region, assumeRoleArn, externalId } = identity;
    if (!assumeRoleArn) return this.base;
    return this.memo(`${region}|${assumeRoleArn}|${externalId ?? ''}`, () =>
      assumeRole(this.base, region, assumeRoleArn, externalId),
    );
  }

  /** A further hop from `identity` (role chaining), e.g. for Redshift's `role/NAME` database users. */
  chained(identity: AwsIdentity, roleArn: string): AwsCredentialIdentityProvider {
    const { region, assumeRoleArn, externalId } = identity;
    return this.memo(`${region}|${assumeRoleArn ?? ''}|${externalId ?? ''}|${roleArn}`, () =>
      assumeRole(this.for(identity), region, roleArn),
    );
  }

  private memo(key: string, make: () => AwsCredentialIdentityProvider): AwsCredentialIdentityProvider {
    let provider = this.byIdentity.get(key);
    if (!provider) {
      provider = make();
      this.byIdentity.set(key, provider);
    }
    return provider;
  }
}
