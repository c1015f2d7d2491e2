// Workload identity from a projected ServiceAccount token: the agent asks the API server (TokenReview)
// whether the token is valid *for this Database's audience*, `drawbridge.dev/<namespace>/<database>`
// (api/runtime.ts workloadAudience). A token minted for another audience — the default API token, one
// meant for another service, or one for another Database — is refused, so a token a workload sends to
// one database (which that database's agent, or anyone who can read its traffic, then holds) opens no
// session at another. The old shared audience `drawbridge.dev` is refused with the fix, unless the
// Database opts in (spec.workloads.acceptSharedAudience, read at each login).
//
// A password is a stranger's to choose, so it must not become an API-server call each time: a token
// whose unverified claims already say no (another audience, expired) is refused without a review;
// concurrent logins with one token share one review; and results are cached, keyed by a hash (never the
// token): successes briefly (a connection pool opening many sessions costs one review), refusals for
// a shorter time. Both caches are bounded; the oldest entry goes first. Made-up tokens are free to
// make, and each distinct one passes all of that: the process asking the API server (ReviewRate)
// asks at a bounded rate, so strangers cannot turn the agent into a flood against the API server.
import { createHash } from 'node:crypto';
import { SHARED_AUDIENCE } from '../api/runtime.js';
import { DrawbridgeError, errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { KubeClient } from '../kube/client.js';
import { collectionPath } from '../kube/resources.js';
import type { Identity, TokenVerifier } from './identity.js';

export interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; groups?: string[] };
  audiences?: string[];
  error?: string;
}

/** Why a token was refused: a fixed set, so it can label a metric. */
export type TokenRefusalReason =
  'shared_audience' | 'other_audience' | 'expired' | 'not_authenticated' | 'review_failed';

/** What the agent counts and audits of tokens (the verifier stays free of the agent's services). */
export interface TokenEvents {
  /** `subject`: the token's own `sub` claim, unverified (who to look for, never who it was). */
  refused(reason: TokenRefusalReason, err: DrawbridgeError, subject: string | undefined): void;
  /** A token accepted only for the shared audience, under spec.workloads.acceptSharedAudience. */
  sharedAccepted(identity: Identity): void;
}

export interface TokenReviewOptions {
  /** The audience tokens must be for: workloadAudience(namespace, database). */
  audience: string;
  /** Whether tokens for the shared audience are accepted too; asked at each login (the spec may change). */
  acceptShared?: () => boolean;
  /** Where the audience is set, for the fix a shared-audience refusal names (`Database shop/orders`). */
  owner?: string;
  events?: TokenEvents;
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

/**
 * TokenReviews per agent replica: `perSecond` on average, `burst` at once; up to `maxWaiting` more wait
 * their turn (at 50/s, 200 wait at most 4 s, inside the default authTimeout of 10 s), and any past them
 * are refused at once. A pool of workloads reconnecting together (one review per token, cached 10 s)
 * fits; a stranger's stream of distinct made-up tokens gets the same 50/s, not what it sends.
 */
export const REVIEW_RATE = { perSecond: 50, burst: 100, maxWaiting: 200 };

/** How often the refusals of a flood are logged (each one is counted). */
const REFUSAL_LOG_MS = 30_000;

/** Lets TokenReviews through `api` at REVIEW_RATE; counts and logs those it refuses. */
export class ReviewRate {
  /** Reviews refused so far (drawbridge_token_reviews_refused_total). */
  refused = 0;
  private tokens: number;
  private filledAt = Date.now();
  private readonly waiting: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;
  private loggedAt = -Infinity;

  constructor(
    private readonly log: Logger,
    private readonly rate = REVIEW_RATE,
  ) {
    this.tokens = rate.burst;
  }

  limit(api: TokenReviewApi): TokenReviewApi {
    return async (spec) => {
      await this.turn();
      return api(spec);
    };
  }

  private turn(): Promise<void> {
    this.refill();
    if (this.waiting.length === 0 && this.tokens >= 1) {
      this.tokens--;
      return Promise.resolve();
    }
    if (this.waiting.length >= this.rate.maxWaiting) return Promise.reject(this.refuse());
    return new Promise((resolve) => {
      this.waiting.push(resolve);
      this.timer ??= setTimeout(this.drain, 1000 / this.rate.perSecond);
    });
  }

  private readonly drain = (): void => {
    this.timer = undefined;
    this.refill();
    for (; this.tokens >= 1 && this.waiting.length > 0; this.tokens--) this.waiting.shift()!();
    if (this.waiting.length > 0) this.timer = setTimeout(this.drain, 1000 / this.rate.perSecond);
  };

  private refill(): void {
    const now = Date.now();
    this.tokens = Math.min(
      this.rate.burst,
      this.tokens + ((now - this.filledAt) * this.rate.perSecond) / 1000,
    );
    this.filledAt = now;
  }

  private refuse(): DrawbridgeError {
    this.refused++;
    const { perSecond, maxWaiting } = this.rate;
    if (Date.now() - this.loggedAt >= REFUSAL_LOG_MS) {
      this.loggedAt = Date.now();
      this.log.warn(
        { refused: this.refused, perSecond, maxWaiting },
        'TokenReviews refused: more distinct tokens than the agent checks (drawbridge_token_reviews_refused_total)',
      );
    }
    return new DrawbridgeError(
      'AUTHN_FAILED',
      `the agent checks at most ${perSecond} ServiceAccount tokens a second and ${maxWaiting} are waiting: this one was not checked`,
      'retry in a few seconds; a lasting flood of made-up tokens shows in drawbridge_token_reviews_refused_total',
    );
  }
}

/** A token refusal, with its reason for the metric and audit. */
export class TokenRefused extends DrawbridgeError {
  constructor(
    readonly reason: TokenRefusalReason,
    message: string,
    hint: string,
    options?: { cause?: unknown },
  ) {
    super('AUTHN_FAILED', message, hint, options);
  }
}

/** The API server accepts tokens up to a minute past `exp` (clock skew): so do we before asking. */
const EXP_LEEWAY_S = 60;

type Cached =
  { identity: Identity; shared: boolean; until: number } | { refused: TokenRefused; until: number };

export class TokenReviewVerifier implements TokenVerifier {
  private readonly audience: string;
  private readonly acceptShared: () => boolean;
  private readonly owner: string;
  private readonly events: TokenEvents | undefined;
  private readonly cacheMs: number;
  private readonly negativeCacheMs: number;
  private readonly maxEntries: number;
  private readonly cache = new Map<string, Cached>();
  private readonly inFlight = new Map<string, Promise<{ identity: Identity; shared: boolean }>>();

  constructor(
    private readonly api: TokenReviewApi,
    opts: TokenReviewOptions,
  ) {
    this.audience = opts.audience;
    this.acceptShared = opts.acceptShared ?? (() => false);
    this.owner = opts.owner ?? 'the Database';
    this.events = opts.events;
    this.cacheMs = opts.cacheMs ?? 10_000;
    this.negativeCacheMs = opts.negativeCacheMs ?? 5_000;
    this.maxEntries = opts.maxEntries ?? 10_000;
  }

  /** Entries held now (both kinds), for tests of the bound. */
  get cached(): number {
    return this.cache.size;
  }

  async verify(token: string): Promise<Identity> {
    try {
      const { identity, shared } = await this.check(token);
      if (shared) this.events?.sharedAccepted(identity);
      return identity;
    } catch (err) {
      if (err instanceof TokenRefused) this.events?.refused(err.reason, err, subjectClaim(token));
      throw err;
    }
  }

  private async check(token: string): Promise<{ identity: Identity; shared: boolean }> {
    const key = createHash('sha256').update(token).digest('base64');
    const hit = this.cache.get(key);
    // A success for the shared audience lasts only while the Database still accepts it.
    if (hit && hit.until > Date.now() && !('shared' in hit && hit.shared && !this.acceptShared())) {
      if ('refused' in hit) throw hit.refused;
      return hit;
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
  private precheck(token: string): TokenRefused | undefined {
    const claims = tokenClaims(token);
    const aud = claims?.aud;
    const audiences = typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud : [];
    if (!audiences.includes(this.audience)) {
      if (!audiences.includes(SHARED_AUDIENCE)) {
        return this.refusal(
          'other_audience',
          `it is not a ServiceAccount token for audience "${this.audience}" (this database's)`,
        );
      }
      if (!this.acceptShared()) return this.sharedRefusal();
    }
    if (typeof claims?.exp === 'number' && claims.exp + EXP_LEEWAY_S < Date.now() / 1000) {
      return this.refusal('expired', 'it has expired');
    }
    return undefined;
  }

  private async review(token: string, key: string): Promise<{ identity: Identity; shared: boolean }> {
    const audiences = this.acceptShared() ? [this.audience, SHARED_AUDIENCE] : [this.audience];
    let status: TokenReviewStatus;
    try {
      status = await this.api({ token, audiences });
    } catch (err) {
      // Not cached: the next login asks again.
      throw new TokenRefused(
        'review_failed',
        `could not check the token with the Kubernetes API: ${errorMessage(err)}`,
        'retry; if it persists, the agent may lack RBAC to create TokenReviews',
        { cause: err },
      );
    }
    // The API server answers with the audiences the token is valid for among those asked.
    const own = status.audiences?.includes(this.audience) ?? false;
    const shared = !own && audiences.length > 1 && (status.audiences?.includes(SHARED_AUDIENCE) ?? false);
    if (!status.authenticated || !status.user?.username || !(own || shared)) {
      const refused = this.refusal('not_authenticated', status.error ?? 'not authenticated');
      this.remember(key, { refused, until: Date.now() + this.negativeCacheMs });
      throw refused;
    }
    const expiresAt = tokenExpiry(token);
    const identity: Identity = {
      user: status.user.username,
      groups: status.user.groups ?? [],
      source: 'token',
      ...(expiresAt ? { expiresAt } : {}),
      ...(shared ? { sharedAudience: true } : {}),
    };
    const until = Math.min(Date.now() + this.cacheMs, expiresAt?.getTime() ?? Infinity);
    this.remember(key, { identity, shared, until });
    return { identity, shared };
  }

  private refusal(reason: TokenRefusalReason, why: string): TokenRefused {
    return new TokenRefused(
      reason,
      `the ServiceAccount token was refused: ${why}`,
      `mount a projected ServiceAccount token with audience "${this.audience}" and send it as the password`,
    );
  }

  private sharedRefusal(): TokenRefused {
    return new TokenRefused(
      'shared_audience',
      `the ServiceAccount token was refused: it is for the shared audience "${SHARED_AUDIENCE}", which any ` +
        'Drawbridge agent may be sent, so it could be replayed at another database; this database ' +
        `accepts audience "${this.audience}" only`,
      `mount the token with audience "${this.audience}": projected volume source ` +
        `{serviceAccountToken: {audience: ${this.audience}, expirationSeconds: 3600, path: token}} ` +
        `(or, while migrating, set spec.workloads.acceptSharedAudience: true on ${this.owner}, which is unsafe)`,
    );
  }

  private remember(key: string, entry: Cached): void {
    this.cache.delete(key);
    if (this.cache.size >= this.maxEntries) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, entry);
  }
}

/** The claims of a JWT, unverified (the API server verifies the signature); undefined when unreadable. */
function tokenClaims(token: string): { aud?: unknown; exp?: unknown; sub?: unknown } | undefined {
  try {
    const claims: unknown = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'));
    return typeof claims === 'object' && claims !== null ? claims : undefined;
  } catch {
    return undefined;
  }
}

/** The `sub` claim, unverified. */
function subjectClaim(token: string): string | undefined {
  const sub = tokenClaims(token)?.sub;
  return typeof sub === 'string' ? sub.slice(0, 253) : undefined;
}

/** The `exp` claim; the API server has already verified the signature, this only reads the date. */
export function tokenExpiry(token: string): Date | undefined {
  const exp = tokenClaims(token)?.exp;
  return typeof exp === 'number' ? new Date(exp * 1000) : undefined;
}
