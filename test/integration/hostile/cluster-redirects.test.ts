// Hostile client vs. Redis Cluster routing: a person allowed to run scripts makes the server answer
// MOVED/ASK naming an address of their choosing. Before the fix the agent dialled it and logged in
// there with the database user's credentials, and patched the slot table every session shares.
// Played against the real 6-node TLS+ACL cluster through the real agent; a trap listener on a free
// loopback port records anything that reaches it. Made-up TRYAGAIN/CLUSTERDOWN/LOADING are not
// retried (a retry re-runs the script's writes). Each attack runs in a RESP2 and a RESP3 session (the
// agent's node connections then speak RESP3 too). The last test is the rule's other side: a real
// redirect to a node the agent has never seen (a new master being filled) is confirmed and followed.
import { readFile } from 'node:fs/promises';
import { type Server, type Socket, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { keySlot } from '../../../src/engines/redis/cluster/key-slot.js';
import type { NodeView } from '../../support/redis-cluster.js';
import { type ClusterFixture, keyOn, startClusterFixture } from '../redis/cluster-fixture.js';
import { keysInSlots, runLoad } from '../redis/cluster-load.js';

let f: ClusterFixture;
let masters: NodeView[];
let trap: Server;
let trapPort: number;
const reached: { connections: number; bytes: number } = { connections: 0, bytes: 0 };
const trapped = new Set<Socket>();

beforeAll(async () => {
  f = await startClusterFixture();
  masters = await f.cluster.masters();
  trap = createServer((s) => {
    reached.connections++;
    trapped.add(s);
    s.on('data', (d: Buffer) => (reached.bytes += d.length));
    s.on('error', () => undefined);
    s.on('close', () => trapped.delete(s));
  });
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
  const addr = trap.address();
  trapPort = typeof addr === 'object' && addr ? addr.port : 0;
});

afterAll(async () => {
  trapped.forEach((s) => s.destroy());
  await new Promise((r) => trap?.close(r));
  await f?.stop();
});

/** The reply or error text of `p`; 'no reply' when the agent sits on it (as it did while dialling). */
async function outcome(p: Promise<unknown>): Promise<unknown> {
  const timeout = sleep(5000).then(() => 'no reply');
  return Promise.race([
    p.then(
      (v) => v,
      (e: Error) => `error: ${e.message}`,
    ),
    timeout,
  ]);
}

const errorScript = 'return redis.error_reply(ARGV[1])';
const LIB = [
  '#!lua name=hostile',
  "redis.register_function('redir', function(keys, args) return redis.error_reply(args[1]) end)",
  "redis.register_function{function_name='redir_ro', flags={'no-writes'}, callback=function(keys, args) return {err=args[1]} end}",
  "redis.register_function('bump_redir', function(keys, args) redis.call('INCR', keys[1]) return redis.error_reply(args[1]) end)",
].join('\n');

/** Every other session: writes and reads keys across every slot range, including slot 0. */
async function othersStillWork(c: Redis): Promise<void> {
  const keys = [...masters.map((m) => keyOn(m, 'other:')), '{s7920}x'];
  expect(keySlot(Buffer.from('{s7920}x'))).toBe(0);
  for (const k of keys) expect(await outcome(c.set(k, `v-${k}`))).toBe('OK');
  for (const k of keys) expect(await outcome(c.get(k))).toBe(`v-${k}`);
}

/** `ops` in a session of `protocol`, checked: a RESP3 session must really be one. */
async function opsSession(protocol: 2 | 3): Promise<Redis> {
  const ops = f.ioredis('ops', { protocol });
  const hello = (await ops.call('HELLO')) as unknown[];
  expect(hello[hello.indexOf('proto') + 1]).toBe(protocol);
  return ops;
}

describe.each([2, 3] as const)(
  'hostile: cluster redirects made up by a script or function (RESP%i)',
  (protocol) => {
    it('MOVED/ASK to a foreign address from EVAL/EVALSHA/EVAL_RO: an ordinary error; never dialled', async () => {
      const ops = await opsSession(protocol);
      const foreign = `127.0.0.1:${trapPort}`;
      const key = keyOn(masters[1]!, `h${protocol}:`);
      const slot = keySlot(Buffer.from(key));
      const sha = (await ops.script('LOAD', errorScript)) as string;
      const cases: [string, Promise<unknown>][] = [
        [`MOVED 0 ${foreign}`, ops.eval(errorScript, 0, `MOVED 0 ${foreign}`)],
        [`ASK 0 ${foreign}`, ops.eval(errorScript, 0, `ASK 0 ${foreign}`)],
        [`MOVED ${slot} ${foreign}`, ops.eval(errorScript, 1, key, `MOVED ${slot} ${foreign}`)],
        [`ASK ${slot} ${foreign}`, ops.evalsha(sha, 1, key, `ASK ${slot} ${foreign}`)],
        [`MOVED ${slot} ${foreign}`, ops.call('EVAL_RO', errorScript, 1, key, `MOVED ${slot} ${foreign}`)],
        [`MOVED ${slot} ${foreign}`, ops.call('EVALSHA_RO', sha, 1, key, `MOVED ${slot} ${foreign}`)],
      ];
      const outcomes = cases.map(([, p]) => outcome(p));
      for (const [i, [text]] of cases.entries()) expect(await outcomes[i]).toBe(`error: ${text}`);
      // Inside EXEC's array the redirect is one element of the answer, as from a single server.
      const tx = await outcome(ops.multi().eval(errorScript, 1, key, `MOVED ${slot} ${foreign}`).exec());
      expect(String((tx as [Error | null, unknown][])[0]![0])).toMatch(`MOVED ${slot} ${foreign}`);
      await sleep(300); // a dial would have started by now
      expect(reached).toEqual({ connections: 0, bytes: 0 });
      await othersStillWork(f.ioredis('alice', { protocol }));
    });

    it('MOVED/ASK from FCALL/FCALL_RO: an ordinary error; never dialled, never re-run', async () => {
      const ops = await opsSession(protocol);
      const scriptRefusalsBefore = await refusedCount('script');
      expect(await ops.function('LOAD', 'REPLACE', LIB)).toBe('hostile');
      const foreign = `127.0.0.1:${trapPort}`;
      const key = keyOn(masters[0]!, `hf${protocol}:`);
      const slot = keySlot(Buffer.from(key));
      expect(await outcome(ops.fcall('redir', 0, `MOVED 0 ${foreign}`))).toBe(`error: MOVED 0 ${foreign}`);
      expect(await outcome(ops.fcall('redir', 1, key, `ASK ${slot} ${foreign}`))).toBe(
        `error: ASK ${slot} ${foreign}`,
      );
      expect(await outcome(ops.call('FCALL_RO', 'redir_ro', 1, key, `MOVED ${slot} ${foreign}`))).toBe(
        `error: MOVED ${slot} ${foreign}`,
      );
      // Aimed at a real node that does not own the slot: following it would run the function again
      // there, bounce back, and patch every session's slot table with a lie.
      const counter = `{${key}}:runs`;
      for (const kind of ['MOVED', 'ASK']) {
        const other = `127.0.0.1:${masters[2]!.port}`;
        expect(
          await outcome(
            ops.fcall('bump_redir', 1, counter, `${kind} ${keySlot(Buffer.from(counter))} ${other}`),
          ),
        ).toBe(`error: ${kind} ${keySlot(Buffer.from(counter))} ${other}`);
      }
      expect(await ops.get(counter)).toBe('2');
      await sleep(300);
      expect(reached).toEqual({ connections: 0, bytes: 0 });
      await othersStillWork(f.ioredis('alice', { protocol }));
      // Counted for whoever watches the agent.
      expect(await refusedCount('script')).toBe(scriptRefusalsBefore + 5);
    });
  },
);

describe.each([2, 3] as const)(
  'hostile: cluster retry errors made up by a script or function (RESP%i)',
  (protocol) => {
    // Before the fix the agent retried TRYAGAIN/CLUSTERDOWN/LOADING for its 20 s budget, re-running the
    // script and its INCR each time, while the audit showed one command.
    it('TRYAGAIN/CLUSTERDOWN/LOADING/MASTERDOWN after a write: the client gets the error at once; the write ran once', async () => {
      const ops = await opsSession(protocol);
      const scriptRefusalsBefore = await refusedCount('script');
      expect(await ops.function('LOAD', 'REPLACE', LIB)).toBe('hostile');
      const bump = "redis.call('INCR', KEYS[1]) return redis.error_reply(ARGV[1])";
      const sha = (await ops.script('LOAD', bump)) as string;
      const forms: Record<string, (key: string, text: string) => Promise<unknown>> = {
        eval: (key, text) => ops.eval(bump, 1, key, text),
        evalsha: (key, text) => ops.evalsha(sha, 1, key, text),
        fcall: (key, text) => ops.fcall('bump_redir', 1, key, text),
      };
      const cases = ['TRYAGAIN', 'CLUSTERDOWN', 'LOADING', 'MASTERDOWN'].flatMap((word) =>
        Object.entries(forms).map(([form, call]) => {
          const key = `{made-up}:${form}:${word}:${protocol}`;
          const text = `${word} made up by ${form} in RESP${protocol}`;
          const started = Date.now();
          const result = outcome(call(key, text)).then((got) => ({ got, ms: Date.now() - started }));
          return { key, text, result };
        }),
      );
      for (const { key, text, result } of cases) {
        const { got, ms } = await result;
        expect(got, key).toBe(`error: ${text}`);
        expect(ms, key).toBeLessThan(1000); // the retry budget is 20 s
        expect(await ops.get(key), key).toBe('1');
      }
      // Inside a transaction the error is one element of EXEC's array, and the script ran once too.
      const txKey = `{made-up}:tx:${protocol}`;
      const txText = `TRYAGAIN made up in tx in RESP${protocol}`;
      const tx = await outcome(ops.multi().eval(bump, 1, txKey, txText).exec());
      expect(String((tx as [Error | null, unknown][])[0]![0])).toMatch(txText);
      expect(await ops.get(txKey)).toBe('1');
      // The audit's one line per command is the truth: one run each.
      await sleep(300);
      const audit = (await readFile(f.agent.auditPath, 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { type: string; command: string; args?: string[] });
      for (const { key, text } of [...cases, { key: txKey, text: txText }]) {
        const lines = audit.filter((e) => e.type === 'command' && e.args?.includes(text));
        expect(lines, text).toHaveLength(1);
        expect(lines[0]!.args).toContain(key);
      }
      // TRYAGAIN/CLUSTERDOWN/LOADING from 3 forms: counted (MASTERDOWN was never retried).
      expect(await refusedCount('script')).toBe(scriptRefusalsBefore + 9);
      await othersStillWork(f.ioredis('alice', { protocol }));
    });
  },
);

/** The agent's count of refused redirects with `reason`. */
async function refusedCount(reason: string): Promise<number> {
  const metric = await f.agent.running.agent.metrics.clusterRedirectsRefused.get();
  return metric.values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

describe('real redirects under the rule', () => {
  it('a new master joins and receives slots under load: redirects to it are confirmed, followed, no error', async () => {
    // The agent learns the shape first, so every redirect to the new node names a node it never saw.
    const seed = f.ioredis('alice');
    expect(await seed.set('before-join', '1')).toBe('OK');
    const added = await f.cluster.addMaster();
    const from = (await f.cluster.masters()).find((m) => m.port !== added)!;
    const moving = from.slots[0]![0];
    const keys = keysInSlots(
      Array.from({ length: 40 }, (_, i) => moving + i),
      10,
    );
    await seed.mset(Object.fromEntries(keys.map((k) => [k, 'seed'])));
    const clients = Array.from({ length: 4 }, () => f.ioredis('alice'));
    const load = runLoad(
      clients,
      (w, n) => keys[(n * 4 + w) % keys.length]!,
      async (c, key, value) => {
        const [set, get] = (await c.pipeline().set(key, value).get(key).exec())!;
        for (const [err] of [set!, get!]) if (err) throw err;
        if (get![1] !== value) throw new Error(`read ${String(get![1])} after writing ${value}`);
      },
    );
    await f.cluster.reshard(from.port, added, 40, 5);
    await load.stop();
    expect(load.errors).toEqual([]);
    expect(load.ops).toBeGreaterThan(50);
    expect(await refusedCount('unconfirmed')).toBe(0);
    // The slots live on the new node now, and what clients wrote through the agent is there.
    const owner = (await f.cluster.view()).find((n) => n.port === added)!;
    expect(owner.slots.some(([a, b]) => a <= moving && moving <= b)).toBe(true);
    // Any acknowledged write to a slot the new node now owns (under load not every slot gets one).
    const owns = (slot: number) => owner.slots.some(([a, b]) => a <= slot && slot <= b);
    const written = [...load.acked.entries()].find(([k]) => owns(keySlot(Buffer.from(k))));
    expect(written, 'no acknowledged write landed in a moved slot').toBeDefined();
    const [key, value] = written!;
    expect((await f.cluster.cli(added, ['GET', key])).trim()).toBe(value);
    expect(reached).toEqual({ connections: 0, bytes: 0 });
  });
});
