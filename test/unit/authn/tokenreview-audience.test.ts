// Tokens are scoped to one Database: `drawbridge.dev/<namespace>/<database>`. A token for another
// Database, or for the old shared audience `drawbridge.dev`, is refused from its own claims (no
// TokenReview), with the fix; the shared one is accepted only while the Database opts in, and every
// refusal is reported with a reason from a fixed set.
import { describe, expect, it } from 'vitest';
import {
  type TokenEvents,
  type TokenRefusalReason,
  type TokenReviewStatus,
  TokenReviewVerifier,
} from '../../../src/authn/tokenreview.js';
import { isDrawbridgeError } from '../../../src/errors.js';

const ORDERS = 'drawbridge.dev/shop/orders';
const SESSIONS = 'drawbridge.dev/shop/sessions';
const SHARED = 'drawbridge.dev';
const SUB = 'system:serviceaccount:shop:app';
const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url');
const jwt = (aud: string[], sub = SUB) =>
  `${b64({ alg: 'RS256' })}.${b64({ aud, exp: Math.floor(Date.now() / 1000) + 600, sub })}.c2ln`;
const user = { username: SUB, groups: ['system:serviceaccounts'] };

/**
 * An API server that, like the real one, answers the intersection of the audiences asked and the
 * token's own (read from its claims here).
 */
function apiServer() {
  const asked: string[][] = [];
  const api = async (spec: { token: string; audiences: string[] }): Promise<TokenReviewStatus> => {
    asked.push(spec.audiences);
    const aud = (
      JSON.parse(Buffer.from(spec.token.split('.')[1]!, 'base64url').toString()) as { aud: string[] }
    ).aud;
    const audiences = spec.audiences.filter((a) => aud.includes(a));
    return audiences.length
      ? { authenticated: true, user, audiences }
      : { authenticated: false, error: 'token audiences are invalid' };
  };
  return { api, asked };
}

function recorder() {
  const refused: { reason: TokenRefusalReason; message: string; subject: string | undefined }[] = [];
  let shared = 0;
  const events: TokenEvents = {
    refused: (reason, err, subject) => refused.push({ reason, message: err.message, subject }),
    sharedAccepted: () => shared++,
  };
  return { events, refused, shared: () => shared };
}

function verifier(acceptShared = () => false) {
  const server = apiServer();
  const seen = recorder();
  const v = new TokenReviewVerifier(server.api, {
    audience: ORDERS,
    acceptShared,
    owner: 'Database shop/orders',
    events: seen.events,
  });
  return { v, ...server, ...seen };
}

describe('TokenReviewVerifier: one audience per Database', () => {
  it("admits a token for this Database's audience, asking for that audience only", async () => {
    const { v, asked } = verifier();
    const id = await v.verify(jwt([ORDERS]));
    expect(id.user).toBe(SUB);
    expect(id.sharedAudience).toBeUndefined();
    expect(asked).toEqual([[ORDERS]]);
  });

  it("refuses a token for another Database's audience without asking, and reports it", async () => {
    const { v, asked, refused } = verifier(() => true);
    const err = await v.verify(jwt([SESSIONS])).catch((e: unknown) => e);
    expect(isDrawbridgeError(err, 'AUTHN_FAILED')).toBe(true);
    expect((err as Error).message).toBe(
      `the ServiceAccount token was refused: it is not a ServiceAccount token for audience "${ORDERS}" (this database's)`,
    );
    expect(asked).toEqual([]);
    expect(refused).toEqual([{ reason: 'other_audience', message: (err as Error).message, subject: SUB }]);
  });

  it('refuses a token for the shared audience by default, naming the audience and the volume to mount', async () => {
    const { v, asked, refused } = verifier();
    const err = await v.verify(jwt([SHARED])).catch((e: unknown) => e);
    expect(isDrawbridgeError(err, 'AUTHN_FAILED')).toBe(true);
    expect((err as Error).message).toBe(
      'the ServiceAccount token was refused: it is for the shared audience "drawbridge.dev", which any ' +
        'Drawbridge agent may be sent, so it could be replayed at another database; this database ' +
        `accepts audience "${ORDERS}" only`,
    );
    expect((err as { hint: string }).hint).toBe(
      `mount the token with audience "${ORDERS}": projected volume source {serviceAccountToken: ` +
        `{audience: ${ORDERS}, expirationSeconds: 3600, path: token}} (or, while migrating, set ` +
        'spec.workloads.acceptSharedAudience: true on Database shop/orders, which is unsafe)',
    );
    expect(asked).toEqual([]);
    expect(refused.map((r) => r.reason)).toEqual(['shared_audience']);
    // Every attempt is reported, not only the first.
    await v.verify(jwt([SHARED])).catch(() => undefined);
    expect(refused.map((r) => r.reason)).toEqual(['shared_audience', 'shared_audience']);
  });

  it('accepts the shared audience while the Database opts in, marked, counted and asked for both', async () => {
    const { v, asked, shared } = verifier(() => true);
    const token = jwt([SHARED]);
    const id = await v.verify(token);
    expect(id.sharedAudience).toBe(true);
    expect(asked).toEqual([[ORDERS, SHARED]]);
    await v.verify(token); // cached, still counted
    expect(asked).toHaveLength(1);
    expect(shared()).toBe(2);
    // A token for its own audience is not a shared-audience login, opt-in or not.
    expect((await v.verify(jwt([ORDERS, SHARED]))).sharedAudience).toBeUndefined();
    expect(shared()).toBe(2);
  });

  it('stops accepting a cached shared-audience success once the opt-in is removed', async () => {
    let optIn = true;
    const { v, asked, refused } = verifier(() => optIn);
    const token = jwt([SHARED]);
    await v.verify(token);
    optIn = false;
    await expect(v.verify(token)).rejects.toThrow(/shared audience "drawbridge.dev"/);
    expect(asked).toHaveLength(1);
    expect(refused.map((r) => r.reason)).toEqual(['shared_audience']);
  });

  it('does not take the shared audience from the API server unless it asked for it', async () => {
    // An API server (or a worker's primary) answering an audience it was not asked for.
    const seen = recorder();
    const v = new TokenReviewVerifier(async () => ({ authenticated: true, user, audiences: [SHARED] }), {
      audience: ORDERS,
      events: seen.events,
    });
    await expect(v.verify(jwt([ORDERS]))).rejects.toThrow(/refused/);
    expect(seen.refused.map((r) => r.reason)).toEqual(['not_authenticated']);
  });

  it('reports an API failure as review_failed, and a refusal by the API server as not_authenticated', async () => {
    const failing = recorder();
    const down = new TokenReviewVerifier(
      async () => {
        throw new Error('connect ECONNREFUSED');
      },
      { audience: ORDERS, events: failing.events },
    );
    await expect(down.verify(jwt([ORDERS]))).rejects.toThrow(/could not check the token/);
    expect(failing.refused.map((r) => r.reason)).toEqual(['review_failed']);

    const refusing = recorder();
    const no = new TokenReviewVerifier(
      async () => ({ authenticated: false, error: 'invalid bearer token' }),
      {
        audience: ORDERS,
        events: refusing.events,
      },
    );
    const token = jwt([ORDERS], 'system:serviceaccount:other:x');
    await expect(no.verify(token)).rejects.toThrow(/invalid bearer token/);
    await expect(no.verify(token)).rejects.toThrow(/invalid bearer token/); // cached, still reported
    expect(refusing.refused).toEqual([
      expect.objectContaining({ reason: 'not_authenticated', subject: 'system:serviceaccount:other:x' }),
      expect.objectContaining({ reason: 'not_authenticated' }),
    ]);
  });
});
