// Code made on first use is shared, and a failed attempt is tried again by the next user (before: a
// module that failed to load once failed every later Redis Cluster session, or AWS credential request,
// until the agent restarted).
import { describe, expect, it } from 'vitest';
import { onFirstUse } from '../../../src/on-first-use.js';
import { RedisEngine } from '../../../src/engines/redis/engine.js';
import type { Router, Routers } from '../../../src/engines/redis/router.js';

/** A factory that fails its first `failures` calls, counting them all. */
function flaky<T>(value: () => T, failures: number) {
  let calls = 0;
  const make = async () => {
    if (++calls <= failures) throw new Error(`EMFILE: too many open files (call ${calls})`);
    return value();
  };
  return { make, calls: () => calls };
}

describe('onFirstUse', () => {
  it('makes once for every caller, together or later', async () => {
    const f = flaky(() => ({}), 0);
    const get = onFirstUse(f.make);
    const [a, b] = await Promise.all([get(), get()]);
    expect(a).toBe(b);
    expect(await get()).toBe(a);
    expect(f.calls()).toBe(1);
  });

  it('tries again after a failure, and shares the failure with those who waited on it', async () => {
    const f = flaky(() => 'made', 1);
    const get = onFirstUse(f.make);
    const waiting = [get(), get()];
    for (const w of waiting) await expect(w).rejects.toThrow(/EMFILE/);
    expect(await get()).toBe('made');
    expect(await get()).toBe('made');
    expect(f.calls()).toBe(2);
  });

  it('turns a synchronous throw into a rejection', async () => {
    const get = onFirstUse((): number => {
      throw new Error('no');
    });
    await expect(get()).rejects.toThrow('no');
  });
});

describe('RedisEngine routers', () => {
  const routers = () => {
    const r = { closed: 0, open: async () => ({}) as Router, close: () => void r.closed++ };
    return r satisfies Routers;
  };
  type Open = (mode: 'cluster', opts: never) => Promise<Router>;
  const open = (engine: RedisEngine) => (engine['openRouter'] as Open)('cluster', undefined as never);

  it('loads a mode again after its modules failed to load', async () => {
    const made = routers();
    const f = flaky(() => made, 1);
    const engine = new RedisEngine({ cluster: f.make });
    await expect(open(engine)).rejects.toThrow(/EMFILE/);
    await expect(open(engine)).resolves.toBeDefined();
    await open(engine);
    expect(f.calls()).toBe(2);
    await engine.close();
    expect(made.closed).toBe(1);
  });

  it('closes routers still loading when the agent closes, and survives one that fails', async () => {
    const made = routers();
    let release!: () => void;
    const engine = new RedisEngine({
      cluster: () => new Promise<Routers>((resolve) => (release = () => resolve(made))),
      standalone: async () => {
        throw new Error('broken');
      },
    });
    const pending = open(engine);
    await expect(
      (engine['openRouter'] as (m: 'standalone', o: never) => Promise<Router>)(
        'standalone',
        undefined as never,
      ),
    ).rejects.toThrow('broken');
    const closing = engine.close();
    release();
    await closing;
    await pending;
    expect(made.closed).toBe(1);
  });
});
