// Hostile: an allowed Redis user trying to run what the roles deny through scripts, functions,
// transactions, pipelines, inline commands and AUTH/HELLO identity switches — against a real Redis 7
// and a real 6-node TLS+ACL Redis Cluster, through the real agent. The rule under test: scripts and
// functions run commands the agent cannot see, so they are refused (NOPERM naming why and the fix)
// unless the person's roles allow every command and no agent-held boundary applies, or a role sets
// allow.redisScripting. The backend ACL user stays the hard boundary for what scripts do.
import type { TLSSocket } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditEvent } from '../../../src/agent/audit.js';
import { CLUSTER_USERS } from '../../support/redis-cluster.js';
import { REDIS_USERS, accessRole } from '../../support/redis.js';
import { type ClusterFixture, clusterDocs, startClusterFixture } from '../redis/cluster-fixture.js';
import { type RedisFixture, redisDocs, startRedisFixture } from '../redis/fixture.js';
import { exchange, pipeline } from './resp.js';

/** alice as `app` gets role "scripts" (allow.redisScripting); as `default` only "developer" (deny @dangerous). */
const scriptingPolicy = (): object[] => [
  accessRole('scripts', { databaseLabels: { env: '*' }, databaseUsers: ['app'], redisScripting: true }),
  {
    apiVersion: 'drawbridge.dev/v1alpha1',
    kind: 'DatabaseUser',
    metadata: { name: 'alice-scripts' },
    spec: { subjects: [{ kind: 'User', name: 'alice' }], roles: ['scripts'] },
  },
];

const LIB = [
  '#!lua name=hostile',
  "redis.register_function('wipe', function(keys) return redis.call('FLUSHDB') end)",
  "redis.register_function{function_name='peek', callback=function(keys) return redis.call('GET', keys[1]) end, flags={'no-writes'}}",
].join('\n');
const WIPE = "return redis.call('FLUSHDB')";
const WIPE_SHA = 'a0c8b2bd9a8f4ba0ac1b8f0e4c8a6e2b4f1d9c7e'; // any: refused before the server looks it up

type Person = 'alice' | 'ops';

interface Target {
  mode: 'standalone' | 'cluster';
  raw(p: Person): Promise<TLSSocket>;
  audit(): Promise<AuditEvent[]>;
  backendPassword(user: 'admin'): string;
  /** Runs on every master directly (not through the agent). */
  everyNode(args: string[]): Promise<void>;
}

let standalone: RedisFixture;
let cluster: ClusterFixture;
const targets: Record<Target['mode'], Target> = {} as Record<Target['mode'], Target>;
const sockets: TLSSocket[] = [];

beforeAll(async () => {
  [standalone, cluster] = await Promise.all([
    startRedisFixture(),
    startClusterFixture(undefined, (c) => [...clusterDocs(c), ...scriptingPolicy()]),
  ]);
  const agent = await standalone.startAgent([...redisDocs(standalone.redis), ...scriptingPolicy()]);
  const track = async (s: Promise<TLSSocket>) => {
    const socket = await s;
    sockets.push(socket);
    return socket;
  };
  targets.standalone = {
    mode: 'standalone',
    raw: (p) => track(standalone.rawAt(agent.port, p)),
    audit: () => agent.auditEvents(),
    backendPassword: (u) => REDIS_USERS[u].password,
    everyNode: async (args) => void (await standalone.redis.cli(args)),
  };
  const masters = (await cluster.cluster.masters()).map((m) => m.port);
  targets.cluster = {
    mode: 'cluster',
    raw: (p) => track(cluster.raw(p)),
    audit: () => cluster.agent.auditEvents(),
    backendPassword: (u) => CLUSTER_USERS[u].password,
    everyNode: async (args) => {
      for (const port of masters) await cluster.cluster.cli(port, args);
    },
  };
  for (const t of Object.values(targets)) {
    await t.everyNode(['FUNCTION', 'LOAD', 'REPLACE', LIB]);
    await t.everyNode(['SCRIPT', 'LOAD', WIPE]);
  }
}, 120_000);

afterAll(async () => {
  sockets.forEach((s) => s.destroy());
  await standalone?.stop();
  await cluster?.stop();
});

/** Every way to run code inside the server, each with the key `keep` so a cluster routes it to keep's node. */
const SCRIPTING: string[][] = [
  ['EVAL', WIPE, '1', 'keep'],
  ['EVALSHA', WIPE_SHA, '1', 'keep'],
  ['EVAL_RO', "return redis.call('GET', KEYS[1])", '1', 'keep'],
  ['EVALSHA_RO', WIPE_SHA, '1', 'keep'],
  ['FCALL', 'wipe', '1', 'keep'],
  ['FCALL_RO', 'peek', '1', 'keep'],
  ['FUNCTION', 'LOAD', 'REPLACE', LIB.replace('hostile', 'hostile2')],
  ['FUNCTION', 'RESTORE', 'not-a-payload'],
];

describe.each(['standalone', 'cluster'] as const)(
  '%s: no command a role denies runs, by any path',
  (mode) => {
    const t = () => targets[mode];

    async function keepIsThere(): Promise<void> {
      const ops = await t().raw('ops');
      expect(await exchange(ops, pipeline([['SET', 'keep', 'x']]), 1)).toEqual(['OK']);
      ops.destroy();
    }

    async function keepSurvived(): Promise<void> {
      const ops = await t().raw('ops');
      expect(await exchange(ops, pipeline([['GET', 'keep']]), 1)).toEqual(['x']);
      ops.destroy();
    }

    it('scripts and functions are refused for a person whose roles deny commands, naming the fix and audited', async () => {
      await keepIsThere();
      const alice = await t().raw('alice');
      const replies = await exchange(alice, pipeline(SCRIPTING), SCRIPTING.length);
      for (const r of replies) {
        expect(r).toMatch(
          /^-NOPERM drawbridge: .*role "developer" denies "@dangerous".*allow\.redisScripting: true/,
        );
      }
      await keepSurvived();
      await sleep(300);
      const denied = (await t().audit()).filter((e) => e.type === 'command.denied' && e.user === 'alice');
      expect(denied.map((e) => e.command)).toEqual(
        expect.arrayContaining([
          'eval',
          'evalsha',
          'eval_ro',
          'evalsha_ro',
          'fcall',
          'fcall_ro',
          'function|load',
          'function|restore',
        ]),
      );
      expect(denied.find((e) => e.command === 'eval')!.reason).toMatch(/allow\.redisScripting/);
    });

    it('a person allowed every command runs scripts only where no agent-held boundary applies', async () => {
      await keepIsThere();
      const ops = await t().raw('ops');
      const [set] = await exchange(
        ops,
        pipeline([['EVAL', "return redis.call('SET', KEYS[1], 'y')", '1', 'ops:k']]),
        1,
      );
      if (mode === 'cluster') {
        // ops is the cluster's admin (allow.redisServerWide, clusterDocs): a script calling CLUSTER
        // MEET/SETSLOT moves nothing it may not move. Without it: hostile/cluster-topology.test.ts.
        expect(set).toBe('OK');
      } else {
        // On a standalone server the agent holds the session to the Database's DB number; SELECT in a script would not be.
        expect(set).toMatch(/^-NOPERM drawbridge: .*DB number.*allow\.redisScripting: true/);
      }
    });

    it('allow.redisScripting lets scripts run; what they do is then bounded by the backend ACL user', async () => {
      await keepIsThere();
      const alice = await t().raw('alice');
      const out = await exchange(
        alice,
        pipeline([
          ['AUTH', 'app', 'x'],
          ['EVAL', "return redis.call('SET', KEYS[1], ARGV[1])", '1', 'script:k', 'v'],
          ['EVAL', WIPE, '1', 'keep'], // app has -@dangerous in the server's ACL
          ['EVAL', "return redis.call('AUTH', 'admin', ARGV[1])", '1', 'keep', t().backendPassword('admin')],
          ['ACL', 'WHOAMI'],
        ]),
        5,
      );
      expect(out.slice(0, 2)).toEqual(['OK', 'OK']);
      expect(out[2]).toMatch(/^-(NOPERM|ERR).*(can't run|permission)/i);
      expect(out[3]).toMatch(/^-ERR.*not allowed from script/i);
      expect(out[4]).toBe('app');
      await keepSurvived();
    });

    it('MULTI/EXEC: a refused command or script taints the transaction, nothing of it runs', async () => {
      await keepIsThere();
      const alice = await t().raw('alice');
      const out = await exchange(
        alice,
        pipeline([
          ['MULTI'],
          ['SET', 'keep', 'overwritten'],
          ['EVAL', WIPE, '1', 'keep'],
          ['EXEC'],
          ['MULTI'],
          ['SET', 'keep', 'overwritten'],
          ['FLUSHDB'],
          ['EXEC'],
        ]),
        8,
      );
      expect(out[0]).toBe('OK');
      expect(out[1]).toBe('QUEUED');
      expect(out[2]).toMatch(/^-NOPERM/);
      expect(out[3]).toMatch(/^-EXECABORT/);
      expect(out.slice(4, 6)).toEqual(['OK', 'QUEUED']);
      expect(out[6]).toMatch(/^-NOPERM/);
      expect(out[7]).toMatch(/^-EXECABORT/);
      await keepSurvived();
    });

    it('pipelined and inline commands are each checked', async () => {
      await keepIsThere();
      const alice = await t().raw('alice');
      const piped = await exchange(
        alice,
        pipeline([
          ['SET', 'p:1', 'a'],
          ['FLUSHDB'],
          ['EVAL', WIPE, '1', 'keep'],
          ['FLUSHALL'],
          ['GET', 'p:1'],
        ]),
        5,
      );
      expect(piped[0]).toBe('OK');
      expect(piped.slice(1, 4)).toEqual([
        expect.stringMatching(/^-NOPERM/),
        expect.stringMatching(/^-NOPERM/),
        expect.stringMatching(/^-NOPERM/),
      ]);
      expect(piped[4]).toBe('a');
      const inline = await exchange(
        alice,
        `FLUSHDB\r\nEVAL "${WIPE}" 1 keep\r\n  flushall  \r\nfcall wipe 1 keep\nGET p:1\r\n`,
        5,
      );
      expect(inline.slice(0, 4)).toEqual(Array(4).fill(expect.stringMatching(/^-NOPERM/)));
      expect(inline[4]).toBe('a');
      await keepSurvived();
    });

    it('AUTH and HELLO AUTH mid-session never switch the backend user beyond what the roles allow', async () => {
      const alice = await t().raw('alice');
      const admin = t().backendPassword('admin');
      const out = await exchange(
        alice,
        pipeline([
          ['AUTH', 'admin', admin],
          ['HELLO', '2', 'AUTH', 'admin', admin],
          ['MULTI'],
          ['AUTH', 'app', 'x'],
          ['EXEC'],
          ['ACL', 'WHOAMI'],
        ]),
        6,
      );
      expect(out[0]).toMatch(/^-NOPERM access to .* as database user "admin" denied/);
      expect(out[1]).toMatch(/^-NOPERM access to .* as database user "admin" denied/);
      expect(out[2]).toBe('OK');
      expect(out[3]).toMatch(/^-ERR AUTH inside MULTI/);
      expect(out[4]).toMatch(/^-EXECABORT/);
      expect(out[5]).toBe('default');
      const inline = await exchange(alice, `AUTH admin ${admin}\r\nACL WHOAMI\r\n`, 2);
      expect(inline).toEqual([expect.stringMatching(/^-NOPERM/), 'default']);
    });
  },
);
