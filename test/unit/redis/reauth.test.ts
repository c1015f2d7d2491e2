// The re-AUTH timer's decisions, on fake timers and fake hooks (the real sends are covered by
// test/integration/redis/reauth*.test.ts): when it fires, waiting while the connection cannot take an
// AUTH, retrying a failed renewal until the old credential ends, dropping a renewal a new login replaced.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { BackendCredential } from '../../../src/agent/credentials.js';
import { Reauth, type ReauthHooks } from '../../../src/engines/redis/reauth.js';
import type { DrawbridgeError } from '../../../src/errors.js';

const OK = Buffer.from('+OK\r\n');
const WRONGPASS = Buffer.from('-WRONGPASS invalid username-password pair\r\n');

function token(ms: number, password = `t${Date.now()}`): BackendCredential {
  return { kind: 'password', user: 'app', password, expiresAt: new Date(Date.now() + ms) };
}

function harness(reply: Buffer = OK) {
  const sent: string[] = [];
  const failures: DrawbridgeError[] = [];
  let ready = true;
  let renewals = 0;
  const hooks: ReauthHooks = {
    renew: vi.fn(async () => token(10_000, `fresh${++renewals}`)),
    ready: () => ready,
    send: (auth) => {
      if (!ready) return undefined;
      sent.push(auth.toString().split('\r\n')[6]!);
      return Promise.resolve(reply);
    },
    fail: (err) => failures.push(err),
  };
  return { hooks, sent, failures, setReady: (r: boolean) => (ready = r), reauth: new Reauth(hooks) };
}

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('Reauth', () => {
  it('does nothing for credentials that do not expire', async () => {
    const h = harness();
    h.reauth.arm({ kind: 'password', user: 'app', password: 'fixed' });
    h.reauth.arm({ kind: 'passthrough', user: 'app' });
    await vi.advanceTimersByTimeAsync(10 * 86_400_000);
    expect(h.hooks.renew).not.toHaveBeenCalled();
  });

  it('AUTHs with a fresh credential shortly before expiresAt, then re-arms for the new one', async () => {
    const h = harness();
    h.reauth.arm(token(10_000));
    await vi.advanceTimersByTimeAsync(8_999);
    expect(h.sent).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.sent).toEqual(['fresh1']);
    await vi.advanceTimersByTimeAsync(9_000);
    expect(h.sent).toEqual(['fresh1', 'fresh2']);
    expect(h.failures).toEqual([]);
  });

  it('waits while the connection cannot take an AUTH, without fetching credentials', async () => {
    const h = harness();
    h.setReady(false);
    h.reauth.arm(token(10_000));
    await vi.advanceTimersByTimeAsync(20_000);
    expect(h.hooks.renew).not.toHaveBeenCalled();
    h.setReady(true);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(h.sent).toEqual(['fresh1']);
  });

  it('retries a failed renewal until the old credential ends, then fails the connection', async () => {
    const h = harness();
    vi.mocked(h.hooks.renew).mockRejectedValue(new Error('STS unreachable'));
    h.reauth.arm(token(10_000));
    await vi.advanceTimersByTimeAsync(9_500);
    expect(h.failures).toEqual([]);
    await vi.advanceTimersByTimeAsync(2_000);
    expect(h.failures).toHaveLength(1);
    expect(h.failures[0]!.code).toBe('BACKEND_AUTH_FAILED');
    expect(h.failures[0]!.message).toMatch(/cannot renew the backend credential of "app".*STS unreachable/);
  });

  it('fails the connection with BACKEND_AUTH_FAILED when the backend refuses the re-AUTH', async () => {
    const h = harness(WRONGPASS);
    h.reauth.arm(token(10_000));
    await vi.advanceTimersByTimeAsync(9_000);
    expect(h.failures.map((e) => [e.code, e.message])).toEqual([
      [
        'BACKEND_AUTH_FAILED',
        expect.stringMatching(/^re-authentication before the credential expired was refused: .*"app"/),
      ],
    ]);
  });

  it('drops a renewal that a new login (cancel/arm) overtook while the credential was being fetched', async () => {
    const h = harness();
    let release: () => void = () => undefined;
    vi.mocked(h.hooks.renew).mockImplementationOnce(
      () => new Promise((resolve) => (release = () => resolve(token(10_000, 'stale')))),
    );
    h.reauth.arm(token(10_000));
    await vi.advanceTimersByTimeAsync(9_000);
    h.reauth.cancel();
    release();
    await vi.advanceTimersByTimeAsync(0);
    expect(h.sent).toEqual([]);
  });
});
