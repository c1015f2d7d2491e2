// Workload identity from a projected ServiceAccount token: the agent asks the API server (TokenReview)
// whether the token is valid *for the drawbridge.dev audience*. A token minted for another audience —
// the default API token, or one meant for another service — is refused, so a token leaked from
// elsewhere cannot open a database session.
//
// A password is a stranger's to choose, so it must not become an API-server call each time: a token
// whose unverified claims already say no (another audience, expired) is refused without a review;
// concurrent logins with one token share one review; and results are cached, keyed by a hash (never the
// token): successes briefly (a connection pool opening many sessions costs one review), refusals for
// a shorter time. Both caches are bounded; the oldest entry goes first.
import { createHash } from 'node:crypto';
import { DrawbridgeError, errorMessage } from '../errors.js';
import type { KubeClient } from '../kube/client.js';
import { collectionPath } from '../kube/resources.js';
import type { Identity, TokenVerifier } from './identity.js';

const DEFAULT_AUDIENCE = 'drawbridge.dev';

export interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; groups?: string[] };
  audiences?: string[];
  error?: string;
}

export interface TokenReviewOptions {
  audience?: string;
  /** How long a positive review is reused (default 10 s; never beyond the token's expiry). */
  cacheMs?: number;
  /** How long a refusal is remembered (default 5 s). */
  negativeCacheMs?: number;
  /** Entries per cache (default 10,000). */
  maxEntries?: number;
}

/** Asks the API server about a token (a TokenReview): its status. */
export type TokenReviewApi = (spec: { token: string; audiences: string[] }) => Promise<TokenReviewStatus>;

/** TokenReviews through `client`; an agent's workers ask their primary instead (agent/workers). */
export function tokenReviewApi(client: Pick<KubeClient, 'request'>): TokenReviewApi {
  return async (spec) => {
    const body = { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec };
    const path = collectionPath('TokenReview');
    const review = await client.request<{ status?: TokenReviewStatus }>('POST', path, { body });
    return review.status ?? {};
  };
}

/** The API server accepts tokens up to a minute past `exp` (clock skew): so do we before asking. */
const EXP_LEEWAY_S = 60;

type Cached = { identity: Identity; until: number } | { refused: DrawbridgeError; until: number };

export class TokenReviewVerifier implements TokenVerifier {
  private readonly audience: string;
  private readonly cacheMs: number;
  private readonly negativeCacheMs: number;
  private readonly maxEntries: number;
  private readonly cache = new Map<string, Cached>();
  private readonly inFlight = new Map<string, Promise<Identity>>();

  constructor(
    private readonly api: TokenReviewApi,
    opts: TokenReviewOptions = {},
  ) {
    this.audience = opts.audience ?? DEFAULT_AUDIENCE;
    this.cacheMs = opts.cacheMs ?? 10_000;
    this.negativeCacheMs = opts.negativeCacheMs ?? 5_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
  }

  /** Entries held now (both kinds), for tests of the bound. */
  get cached(): number {
    return this.cache.size;
  }

  async verify(token: string): Promise<Identity> {
    const key = createHash('sha256').update(token).digest('base64');
    const hit = this.cache.get(key);
    if (hit && hit.until > Date.now()) {
      if ('refused' in hit) throw hit.refused;
      return hit.identity;
    }
    const claimsSayNo = this.precheck(token);
    if (claimsSayNo) throw claimsSayNo;
    let review = this.inFlight.get(key);
    if (!review) {
      review = this.review(token, key).finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, review);
    }
    return review;
  }

  /** A refusal the token's own claims give, or undefined when only the API server can tell. */
  private precheck(token: string): DrawbridgeError | undefined {
    const claims = tokenClaims(token);
    const aud = claims?.aud;
    const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!audiences.includes(this.audience)) {
      return this.refusal(`it is not a ServiceAccount token for audience "${this.audience}"`);
    }
    if (typeof claims?.exp === 'number' && claims.exp + EXP_LEEWAY_S < Date.now() / 1000) {
      return this.refusal('it has expired');
    }
    return undefined;
  }

  private async review(token: string, key: string): Promise<Identity> {
    let status: TokenReviewStatus;
    try {
      status = await this.api({ token, audiences: [this.audience] });
    } catch (err) {
      // Not cached: the next login asks again.
      throw new DrawbridgeError(
        'AUTHN_FAILED',
        `could not check the token with the Kubernetes API: ${errorMessage(err)}`,
        'retry; if it persists, the agent may lack RBAC to create TokenReviews',
        { cause: err },
      );
    }
    if (!status.authenticated || !status.user?.username || !status.audiences?.includes(this.audience)) {
      const refused = this.refusal(status.error ?? 'not authenticated');
      this.remember(key, { refused, until: Date.now() + this.negativeCacheMs });
      throw refused;
    }
    const expiresAt = tokenExpiry(token);
    const identity: Identity = {
      user: status.user.username,
      groups: status.user.groups ?? [],
      source: 'token',
      ...(expiresAt ? { expiresAt } : {}),
    };
    const until = Math.min(Date.now() + this.cacheMs, expiresAt?.getTime() ?? Infinity);
    this.remember(key, { identity, until });
    return identity;
  }

  private refusal(why: string): DrawbridgeError {
    return new DrawbridgeError(
      'AUTHN_FAILED',
      `the ServiceAccount token was refused: ${why}`,
      `mount a projected ServiceAccount token with audience "${this.audience}" and send it as the password`,
    );
  }

  private remember(key: string, entry: Cached): void {
    this.cache.delete(key);
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, entry);
  }
}

/** The claims of a JWT, unverified (the API server verifies the signature); undefined when unreadable. */
function tokenClaims(token: string): { aud?: unknown; exp?: unknown } | undefined {
  try {
    const claims: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null ? claims : undefined;
  } catch {
    return undefined;
  }
}

/** The `exp` claim; the API server has already verified the signature, this only reads the date. */
export function tokenExpiry(token: string): Date | undefined {
  const exp = tokenClaims(token)?.exp;
  return typeof exp === 'number' ? new Date(exp * 1000) : undefined;
}
