import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  REVIEW_RATE,
  ReviewRate,
  TokenReviewVerifier,
  tokenExpiry,
  tokenReviewApi,
} from '../../../src/authn/tokenreview.js';
import { isDrawbridgeError } from '../../../src/errors.js';
import { createLogger } from '../../../src/log.js';
import type { KubeClient } from '../../../src/kube/client.js';
import { KubeApiError } from '../../../src/kube/errors.js';

const AUD = 'drawbridge.dev/shop/orders';
const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (exp: number, aud: unknown = [AUD], sub = 'system:serviceaccount:shop:app') =>
  `${b64({ alg: 'RS256' })}.${b64({ aud, exp, sub })}.c2ln`;
const soon = () => Math.floor(Date.now() / 1000) + 600;

/** Our KubeClient seam, counting TokenReviews; answers `status` (or throws it), each after `delayMs`. */
function fakeApi(status: object | Error, delayMs = 0) {
  const calls: { body: { spec: { token: string; audiences: string[] } } }[] = [];
  const client = {
    request: async (_m: string, _p: string, opts: { body: never }) => {
      calls.push(opts);
      if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
      if (status instanceof Error) throw status;
      return { status };
    },
  } as unknown as Pick<KubeClient, 'request'>;
  return { client, calls };
}

const user = { username: 'system:serviceaccount:shop:app', groups: ['system:serviceaccounts'] };

describe('TokenReviewVerifier', () => {
  it("asks for the Database's own audience and returns the reviewed identity with the token expiry", async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const { client, calls } = fakeApi({ authenticated: true, user, audiences: [AUD] });
    const id = await new TokenReviewVerifier(tokenReviewApi(client), { audience: AUD }).verify(jwt(exp));
    expect(calls[0]!.body.spec.audiences).toEqual([AUD]);
    expect(id).toEqual({
      user: user.username,
      groups: user.groups,
      source: 'token',
      expiresAt: new Date(exp * 1000),
    });
  });

  it.each([
    [
      'not authenticated',
      { authenticated: false, error: 'token audiences ["https://kubernetes.default.svc"] is invalid' },
      /audiences/,
    ],
    [
      'authenticated for another audience only',
      { authenticated: true, user, audiences: ['vault'] },
      /refused/,
    ],
    ['no user', { authenticated: true, audiences: [AUD] }, /refused/],
  ])('refuses a token that is %s', async (_n, status, message) => {
    const { client } = fakeApi(status);
    const err = await new TokenReviewVerifier(tokenReviewApi(client), { audience: AUD })
      .verify(jwt(2e9))
      .catch((e: unknown) => e);
    expect(isDrawbridgeError(err, 'AUTHN_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(message);
  });

  it('reports an API failure as an authentication error naming RBAC', async () => {
    const { client } = fakeApi(new KubeApiError(403, 'Forbidden', 'tokenreviews is forbidden'));
    const err = await new TokenReviewVerifier(tokenReviewApi(client), { audience: AUD })
      .verify(jwt(2e9))
      .catch((e: unknown) => e);
    expect(isDrawbridgeError(err, 'AUTHN_FAILED')).toBe(true);
    expect((err as { hint: string }).hint).toMatch(/RBAC/);
  });

  it('reuses a positive review for the cache period', async () => {
    const { client, calls } = fakeApi({ authenticated: true, user, audiences: [AUD] });
    const v = new TokenReviewVerifier(tokenReviewApi(client), { audience: AUD, cacheMs: 60_000 });
    const token = jwt(Math.floor(Date.now() / 1000) + 600);
    await v.verify(token);
    await v.verify(token);
    expect(calls).toHaveLength(1);
    await v.verify(jwt(Math.floor(Date.now() / 1000) + 700));
    expect(calls).toHaveLength(2);
  });

  it('reads no expiry from a token without a readable exp claim', () => {
    expect(tokenExpiry('a.b.c')).toBeUndefined();
    expect(tokenExpiry(`${b64({})}.${b64({ sub: 'x' })}.s`)).toBeUndefined();
  });

  describe('is not an API-server call per login attempt', () => {
    const refused = { authenticated: false, error: 'invalid bearer token' };

    it('remembers a refusal briefly, then asks again', async () => {
      const { client, calls } = fakeApi(refused);
      const v = new TokenReviewVerifier(tokenReviewApi(client), { audience: AUD, negativeCacheMs: 100 });
      const token = jwt(soon());
      for (let i = 0; i < 20; i++) await expect(v.verify(token)).rejects.toThrow(/invalid bearer token/);
      expect(calls).toHaveLength(1);
      await new Promise((r) => setTimeout(r, 150));
      await expect(v.verify(token)).rejects.toThrow(/refused/);
      expect(calls).toHaveLength(2);
    });

    it('shares one review between concurrent logins with the same token', async () => {
      const ok = fakeApi({ authenticated: true, user, audiences: [AUD] }, 20);
      const good = new TokenReviewVerifier(tokenReviewApi(ok.client), { audience: AUD });
      const token = jwt(soon());
      const ids = await Promise.all(Array.from({ length: 20 }, () => good.verify(token)));
      expect(new Set(ids.map((i) => i.user))).toEqual(new Set([user.username]));
      expect(ok.calls).toHaveLength(1);

      const bad = fakeApi(refused, 20);
      const v = new TokenReviewVerifier(tokenReviewApi(bad.client), { audience: AUD });
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => v.verify(token)));
      expect(results.every((r) => r.status === 'rejected')).toBe(true);
      expect(bad.calls).toHaveLength(1);
    });

    it.each([
      [
        'another audience',
        jwt(soon(), ['https://kubernetes.default.svc']),
        /not a ServiceAccount token for audience "drawbridge.dev\/shop\/orders"/,
      ],
      ['no audience', jwt(soon(), null), /audience/],
      ['expired', jwt(Math.floor(Date.now() / 1000) - 3600), /expired/],
      ['not a JWT', 'x'.repeat(60), /audience/],
      ['unreadable claims', 'eyJhbGciOiJSUzI1NiJ9.!!!!.c2ln', /audience/],
    ])('refuses a token whose own claims say no (%s) without asking', async (_n, token, message) => {
      const { client, calls } = fakeApi({ authenticated: true, user, audiences: [AUD] });
      const err = await new TokenReviewVerifier(tokenReviewApi(client), { audience: AUD })
        .verify(token)
        .catch((e: unknown) => e);
      expect(isDrawbridgeError(err, 'AUTHN_FAILED')).toBe(true);
      expect((err as Error).message).toMatch(message);
      expect(calls).toHaveLength(0);
    });

    it('holds at most maxEntries results, dropping the oldest first', async () => {
      const { client, calls } = fakeApi(refused);
      const v = new TokenReviewVerifier(tokenReviewApi(client), { audience: AUD, maxEntries: 3 });
      const tokens = Array.from({ length: 5 }, (_, i) => jwt(soon(), [AUD], `stranger-${i}`));
      for (const t of tokens) await v.verify(t).catch(() => undefined);
      expect(v.cached).toBe(3);
      expect(calls).toHaveLength(5);
      await v.verify(tokens[4]!).catch(() => undefined); // newest: still cached
      expect(calls).toHaveLength(5);
      await v.verify(tokens[0]!).catch(() => undefined); // oldest: evicted, asked again
      expect(calls).toHaveLength(6);
    });

    it('does not remember an API failure', async () => {
      const { client, calls } = fakeApi(new KubeApiError(503, 'ServiceUnavailable', 'etcd'));
      const v = new TokenReviewVerifier(tokenReviewApi(client), { audience: AUD });
      const token = jwt(soon());
      await v.verify(token).catch(() => undefined);
      await v.verify(token).catch(() => undefined);
      expect(calls).toHaveLength(2);
    });
  });
});

describe('ReviewRate', () => {
  const refused = { authenticated: false, error: 'invalid bearer token' };
  afterEach(() => vi.useRealTimers());

  it('asks the API server at most its rate, however many distinct tokens strangers send', async () => {
    vi.useFakeTimers();
    const { client, calls } = fakeApi(refused);
    const { burst, perSecond, maxWaiting } = REVIEW_RATE;
    const rate = new ReviewRate(createLogger('unit', 'silent'));
    const v = new TokenReviewVerifier(rate.limit(tokenReviewApi(client)), { audience: AUD });
    const n = burst + maxWaiting + 50;
    const results = Array.from({ length: n }, (_, i) =>
      v.verify(jwt(soon(), [AUD], `stranger-${i}`)).then(
        () => 'ok',
        (e: unknown) => (e as Error).message,
      ),
    );
    await vi.advanceTimersByTimeAsync(0);
    // The burst is asked at once; the next maxWaiting wait their turn; the rest are refused now.
    expect(calls).toHaveLength(burst);
    expect(rate.refused).toBe(50);
    await vi.advanceTimersByTimeAsync(1000);
    expect(calls.length).toBeGreaterThanOrEqual(burst + perSecond - 1);
    expect(calls.length).toBeLessThanOrEqual(burst + perSecond);
    await vi.advanceTimersByTimeAsync((maxWaiting / perSecond) * 1000);
    expect(calls).toHaveLength(burst + maxWaiting);
    const texts = await Promise.all(results);
    expect(texts.filter((t) => /checks at most 50 ServiceAccount tokens a second/.test(t))).toHaveLength(50);
    expect(texts.filter((t) => /token was refused/.test(t))).toHaveLength(burst + maxWaiting);
  });

  it('costs a cached or shared review nothing', async () => {
    const { client, calls } = fakeApi({ authenticated: true, user, audiences: [AUD] });
    const rate = new ReviewRate(createLogger('unit', 'silent'), { perSecond: 1, burst: 1, maxWaiting: 0 });
    const v = new TokenReviewVerifier(rate.limit(tokenReviewApi(client)), { audience: AUD });
    const token = jwt(soon());
    await Promise.all(Array.from({ length: 5 }, () => v.verify(token)));
    await v.verify(token);
    expect(calls).toHaveLength(1);
    expect(rate.refused).toBe(0);
    const other = await v.verify(jwt(soon(), [AUD], 'other')).catch((e: unknown) => e);
    expect(isDrawbridgeError(other, 'AUTHN_FAILED')).toBe(true);
    expect(rate.refused).toBe(1);
  });
});
