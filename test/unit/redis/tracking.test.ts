// The CLIENT TRACKING guard (standalone): what it refuses outright, and which BCAST prefixes the
// database user's key patterns (ACL GETUSER's `keys`, as Redis 7 prints them) cover.
import { describe, expect, it } from 'vitest';
import type { GuardContext, GuardResult } from '../../../src/engines/redis/db-boundary.js';
import { commandName } from '../../../src/engines/redis/command-name.js';
import type { RedisCommand } from '../../../src/engines/redis/parser.js';
import { RespError, RespMap } from '../../../src/engines/redis/reply-parser.js';
import { encodeCommand, encodeValue } from '../../../src/engines/redis/serializer.js';
import { trackingGuard, trackingRequest } from '../../../src/engines/redis/tracking.js';

const cmd = (line: string): RedisCommand => {
  const args = line.split(' ').map((a) => Buffer.from(a));
  return { name: commandName(args), args, raw: encodeCommand(args) };
};

/** A RESP3 session of `user` whose ACL GETUSER answers `keys` (or an error). */
function session(
  keys: string | RespError,
  opts: Partial<GuardContext> = {},
): GuardContext & { asked: string[] } {
  const asked: string[] = [];
  return {
    inMulti: false,
    protocol: 3,
    dbUser: 'keyed',
    asked,
    ask: (c) => {
      asked.push(c.args.map((a) => a.toString()).join(' '));
      const reply =
        keys instanceof RespError
          ? keys
          : new RespMap([
              [Buffer.from('flags'), []],
              [Buffer.from('keys'), Buffer.from(keys)],
            ]);
      return Promise.resolve(encodeValue(reply, 3));
    },
    ...opts,
  };
}

async function verdict(r: GuardResult): Promise<string> {
  if (r === undefined) return 'relay';
  if ('refuse' in r) return `refuse: ${r.refuse}`;
  if (!('check' in r)) return 'answer';
  // As SessionCommands does: `passed` once the check (and a re-decision) let the command through.
  const refusal = await r.check();
  if (refusal !== undefined) return `refuse: ${refusal}`;
  r.passed?.();
  return 'relay';
}

describe('trackingGuard', () => {
  it('relays OFF and default-mode ON in RESP3; refuses RESP2, REDIRECT, and BCAST inside MULTI', async () => {
    const s = session('~*');
    expect(await verdict(trackingGuard(cmd('CLIENT TRACKING off'), s))).toBe('relay');
    expect(await verdict(trackingGuard(cmd('CLIENT TRACKING ON OPTIN NOLOOP'), s))).toBe('relay');
    expect(s.asked).toEqual([]);
    expect(await verdict(trackingGuard(cmd('CLIENT TRACKING ON'), session('~*', { protocol: 2 })))).toMatch(
      /^refuse: CLIENT TRACKING in RESP2 needs REDIRECT/,
    );
    expect(await verdict(trackingGuard(cmd('CLIENT TRACKING on redirect 7'), s))).toMatch(
      /^refuse: .*REDIRECT is not/,
    );
    expect(
      await verdict(trackingGuard(cmd('CLIENT TRACKING ON BCAST'), session('~*', { inMulti: true }))),
    ).toMatch(/inside MULTI/);
  });

  it.each([
    ['~*', 'BCAST', 'relay'],
    ['~*', 'BCAST PREFIX a: PREFIX b:', 'relay'],
    ['~app:*', 'BCAST PREFIX app:', 'relay'],
    ['~app:*', 'BCAST PREFIX app:users:', 'relay'],
    ['%R~app:* %W~secret:*', 'BCAST PREFIX app:', 'relay'],
    ['~app:*', 'BCAST PREFIX ap', 'PREFIX "ap" is outside'],
    ['~app:*', 'BCAST PREFIX app: PREFIX secret:', 'PREFIX "secret:" is outside'],
    ['~app:*', 'BCAST', 'without PREFIX (every key) is outside'],
    ['%W~secret:*', 'BCAST PREFIX secret:', 'PREFIX "secret:" is outside'],
    ['~app?:*', 'BCAST PREFIX app1:', 'PREFIX "app1:" is outside'],
    ['~app:', 'BCAST PREFIX app:', 'PREFIX "app:" is outside'],
    ['', 'BCAST PREFIX app:', 'may read (none)'],
  ])('keys %j, %s: %s', async (keys, options, expected) => {
    const s = session(keys);
    const got = await verdict(trackingGuard(cmd(`CLIENT TRACKING ON ${options}`), s));
    if (expected === 'relay') expect(got).toBe('relay');
    else expect(got).toContain(expected);
    expect(s.asked[0]).toBe('ACL GETUSER keyed');
  });

  it('refuses BCAST when the backend will not tell the key patterns, naming why', async () => {
    const s = session(new RespError("NOPERM this user has no permissions to run the 'acl|getuser' command"));
    expect(await verdict(trackingGuard(cmd('CLIENT TRACKING ON BCAST PREFIX a'), s))).toMatch(
      /cannot read database user "keyed"'s key patterns \(ACL GETUSER: NOPERM/,
    );
  });

  it('remembers whose keys a BCAST passed for, until OFF outside a transaction', async () => {
    const s = session('~app:*');
    await verdict(trackingGuard(cmd('CLIENT TRACKING ON BCAST PREFIX secret:'), s));
    expect(s.trackingUser).toBeUndefined(); // refused: nothing tracks
    await verdict(trackingGuard(cmd('CLIENT TRACKING ON BCAST PREFIX app:'), s));
    expect(s.trackingUser).toBe('keyed');
    const queued = { ...s, inMulti: true };
    trackingGuard(cmd('CLIENT TRACKING OFF'), queued); // the transaction may never run
    expect(queued.trackingUser).toBe('keyed');
    trackingGuard(cmd('CLIENT TRACKING OFF'), s);
    expect(s.trackingUser).toBeUndefined();
  });

  it('remembers whose reads default-mode tracking follows (no backend question)', async () => {
    const s = session('~app:*');
    expect(await verdict(trackingGuard(cmd('CLIENT TRACKING ON OPTIN NOLOOP'), s))).toBe('relay');
    expect(s.trackingUser).toBe('keyed');
    expect(s.asked).toEqual([]);
    trackingGuard(cmd('CLIENT TRACKING OFF'), s);
    expect(s.trackingUser).toBeUndefined();
  });
});

describe('trackingRequest', () => {
  it('reads the options as Redis does: a PREFIX argument is a prefix, never an option', () => {
    const r = trackingRequest(cmd('CLIENT TRACKING on BCAST PREFIX optin PREFIX redirect'));
    expect(r).toEqual({
      mode: 'on',
      redirect: false,
      bcast: true,
      noloop: false,
      prefixes: [Buffer.from('optin'), Buffer.from('redirect')],
      opt: undefined,
    });
    expect(trackingRequest(cmd('CLIENT TRACKING ON OPTOUT NOLOOP'))).toMatchObject({
      opt: 'optout',
      noloop: true,
    });
    expect(trackingRequest(cmd('CLIENT TRACKING ON REDIRECT 7'))).toMatchObject({ redirect: true });
    expect(trackingRequest(cmd('CLIENT TRACKING maybe')).mode).toBeUndefined();
  });

  it('is read once per command: the guard and the cluster router get the same result', () => {
    const c = cmd('CLIENT TRACKING ON OPTIN');
    expect(trackingRequest(c)).toBe(trackingRequest(c));
  });
});
