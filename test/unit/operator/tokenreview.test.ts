import { describe, expect, it } from 'vitest';
import { TokenReviewVerifier, tokenExpiry } from '../../../src/authn/tokenreview.js';
import { isDrawbridgeError } from '../../../src/errors.js';
import type { KubeClient } from '../../../src/operator/kube/client.js';
import { KubeApiError } from '../../../src/operator/kube/errors.js';

const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (exp: number) =>
  `${b64({ alg: 'RS256' })}.${b64({ exp, sub: 'system:serviceaccount:shop:app' })}.c2ln`;

function fakeApi(status: object | Error) {
  const calls: { body: { spec: { token: string; audiences: string[] } } }[] = [];
  const client = {
    request: async (_m: string, _p: string, opts: { body: never }) => {
      calls.push(opts);
      if (status instanceof Error) throw status;
      return { status };
    },
  } as unknown as Pick<KubeClient, 'request'>;
  return { client, calls };
}

const user = { username: 'system:serviceaccount:shop:app', groups: ['system:serviceaccounts'] };

describe('TokenReviewVerifier', () => {
  it('asks for the drawbridge.dev audience and returns the reviewed identity with the token expiry', async () => {
    const exp = Math.floor(Date.now() / 1000) + 600;
    const { client, calls } = fakeApi({ authenticated: true, user, audiences: ['drawbridge.dev'] });
    const id = await new TokenReviewVerifier(client).verify(jwt(exp));
    expect(calls[0]!.body.spec.audiences).toEqual(['drawbridge.dev']);
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
    ['no user', { authenticated: true, audiences: ['drawbridge.dev'] }, /refused/],
  ])('refuses a token that is %s', async (_n, status, message) => {
    const { client } = fakeApi(status);
    const err = await new TokenReviewVerifier(client).verify(jwt(2e9)).catch((e: unknown) => e);
    expect(isDrawbridgeError(err, 'AUTHN_FAILED')).toBe(true);
    expect((err as Error).message).toMatch(message);
  });

  it('reports an API failure as an authentication error naming RBAC', async () => {
    const { client } = fakeApi(new KubeApiError(403, 'Forbidden', 'tokenreviews is forbidden'));
    const err = await new TokenReviewVerifier(client).verify(jwt(2e9)).catch((e: unknown) => e);
    expect(isDrawbridgeError(err, 'AUTHN_FAILED')).toBe(true);
    expect((err as { hint: string }).hint).toMatch(/RBAC/);
  });

  it('reuses a positive review for the cache period', async () => {
    const { client, calls } = fakeApi({ authenticated: true, user, audiences: ['drawbridge.dev'] });
    const v = new TokenReviewVerifier(client, { cacheMs: 60_000 });
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
});
