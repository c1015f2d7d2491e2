// Workload identity from a projected ServiceAccount token: the agent asks the API server (TokenReview)
// whether the token is valid *for the drawbridge.dev audience*. A token minted for another audience —
// the default API token, or one meant for another service — is refused, so a token leaked from
// elsewhere cannot open a database session. Results are cached briefly (keyed by a hash, never the
// token) so a connection pool opening many sessions costs one review.
import { createHash } from 'node:crypto';
import { DrawbridgeError, errorMessage } from '../errors.js';
import type { KubeClient } from '../operator/kube/client.js';
import { collectionPath } from '../operator/kube/resources.js';
import type { Identity, TokenVerifier } from './identity.js';

export const DEFAULT_AUDIENCE = 'drawbridge.dev';

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; groups?: string[] };
  audiences?: string[];
  error?: string;
}

export interface TokenReviewOptions {
  audience?: string;
  /** How long a positive review is reused (default 10 s; never beyond the token's expiry). */
  cacheMs?: number;
}

const MAX_CACHE = 10_000;

export class TokenReviewVerifier implements TokenVerifier {
  private readonly audience: string;
  private readonly cacheMs: number;
  private readonly cache = new Map<string, { identity: Identity; until: number }>();

  constructor(
    private readonly client: Pick<KubeClient, 'request'>,
    opts: TokenReviewOptions = {},
  ) {
    this.audience = opts.audience ?? DEFAULT_AUDIENCE;
    this.cacheMs = opts.cacheMs ?? 10_000;
  }

  async verify(token: string): Promise<Identity> {
    const key = createHash('sha256').update(token).digest('base64');
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) return hit.identity;

    let status: TokenReviewStatus;
    try {
      const review = await this.client.request<{ status?: TokenReviewStatus }>(
        'POST',
        collectionPath('TokenReview'),
        {
          body: {
            apiVersion: 'authentication.k8s.io/v1',
            kind: 'TokenReview',
            spec: { token, audiences: [this.audience] },
          },
        },
      );
      status = review.status ?? {};
    } catch (err) {
      throw new DrawbridgeError(
        'AUTHN_FAILED',
        `could not check the token with the Kubernetes API: ${errorMessage(err)}`,
        'retry; if it persists, the agent may lack RBAC to create TokenReviews',
        { cause: err },
      );
    }
    if (!status.authenticated || !status.user?.username || !status.audiences?.includes(this.audience)) {
      throw new DrawbridgeError(
        'AUTHN_FAILED',
        `the ServiceAccount token was refused: ${status.error ?? 'not authenticated'}`,
        `mount a projected ServiceAccount token with audience "${this.audience}" and send it as the password`,
      );
    }
    const expiresAt = tokenExpiry(token);
    const identity: Identity = {
      user: status.user.username,
      groups: status.user.groups ?? [],
      source: 'token',
      ...(expiresAt ? { expiresAt } : {}),
    };
    if (this.cache.size >= MAX_CACHE) this.cache.clear();
    const until = Math.min(Date.now() + this.cacheMs, expiresAt?.getTime() ?? Infinity);
    this.cache.set(key, { identity, until });
    return identity;
  }
}

/** The `exp` claim; the API server has already verified the signature, this only reads the date. */
export function tokenExpiry(token: string): Date | undefined {
  try {
    const payload = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8')) as {
      exp?: unknown;
    };
    return typeof payload.exp === 'number' ? new Date(payload.exp * 1000) : undefined;
  } catch {
    return undefined;
  }
}
