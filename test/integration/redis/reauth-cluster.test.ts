// Re-AUTH of rotating credentials on Redis Cluster node connections, against the real 6-node TLS + ACL
// cluster. As in reauth.test.ts a test provider stands in for the IAM one under the `password` auth
// type: for user `rot` each call adds a new password on every node and says it expires in about a
// second. The pooled connection to each master must AUTH again with fresh passwords and stay open.
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProviderFactory } from '../../../src/agent/credentials.js';
import { agentParts } from '../../../src/wiring.js';
import { CLUSTER_USERS, type ClusterUserName } from '../../support/redis-cluster.js';
import { type ClusterFixture, startClusterFixture } from './cluster-fixture.js';

const LIFETIME_MS = 1000;
let f: ClusterFixture;
/** One admin connection per node, opened once: nothing else AUTHs on a node while we count. */
let admins: Redis[] = [];
const issued: number[] = [];

const rotatingPasswords: ProviderFactory = () => ({
  async get({ dbUser }) {
    if (dbUser !== 'rot') {
      return { kind: 'password', user: dbUser, password: CLUSTER_USERS[dbUser as ClusterUserName].password };
    }
    const password = `token-${issued.length}-${Math.random().toString(36).slice(2)}`;
    // Added, not replacing: the connections to different nodes renew independently of each other.
    await Promise.all(admins.map((a) => a.call('ACL', 'SETUSER', 'rot', `>${password}`)));
    const expiresAt = Date.now() + LIFETIME_MS;
    issued.push(expiresAt);
    return { kind: 'password', user: 'rot', password, expiresAt: new Date(expiresAt) };
  },
});
/** The real build with the rotating provider above as `password`. */
const parts = { ...agentParts, credentials: { ...agentParts.credentials, password: rotatingPasswords } };

interface NodeAuth {
  calls: number;
  failed: number;
  /** Ids of the connections logged in as `rot`. */
  rot: string[];
}

async function nodeAuth(admin: Redis): Promise<NodeAuth> {
  const info = String(await admin.call('INFO', 'commandstats'));
  const m = /cmdstat_auth:calls=(\d+),.*failed_calls=(\d+)/.exec(info);
  const clients = String(await admin.call('CLIENT', 'LIST')).split('\n');
  const rot = clients.filter((l) => / user=rot /.test(l)).map((l) => /^id=(\d+)/.exec(l)![1]!);
  return { calls: Number(m?.[1] ?? 0), failed: Number(m?.[2] ?? 0), rot };
}

async function until(what: string, check: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (check()) return;
    await sleep(50);
  }
  throw new Error(`timed out waiting for ${what}`);
}

beforeAll(async () => {
  f = await startClusterFixture(undefined, undefined, parts);
  const { tls } = f.cluster;
  admins = f.cluster.nodes.map(
    (n) =>
      new Redis({
        host: '127.0.0.1',
        port: n.port,
        username: 'admin',
        password: CLUSTER_USERS.admin.password,
        tls: { ca: tls.caPem, cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) },
      }),
  );
  await Promise.all(admins.map((a) => a.call('ACL', 'SETUSER', 'rot', 'on', '~*', '&*', '+@all')));
});

afterAll(async () => {
  admins.forEach((a) => a.disconnect());
  await f?.stop();
});

describe('re-AUTH on cluster node connections', () => {
  it('keeps every pooled master connection open past expiresAt, each AUTHing again', async () => {
    const client = f.ioredis('ops', { username: 'rot', password: 'ignored' });
    const keys = Array.from({ length: 30 }, (_, i) => `reauth:${i}`);
    for (const k of keys) expect(await client.set(k, k)).toBe('OK');
    const masters = (await f.cluster.masters()).map((m) =>
      f.cluster.nodes.findIndex((n) => n.port === m.port),
    );
    const before = await Promise.all(masters.map((i) => nodeAuth(admins[i]!)));
    for (const b of before) expect(b.rot.length).toBeGreaterThan(0);
    const first = issued.length;
    const lastBefore = issued.at(-1)!;
    // Two renewals per master connection, and past the expiry of every credential they started with.
    await until('renewals on every connection', () => issued.length >= first + 2 * masters.length);
    await until('the first credentials to expire', () => Date.now() > lastBefore);
    for (const k of keys) expect(await client.get(k)).toBe(k);
    const after = await Promise.all(masters.map((i) => nodeAuth(admins[i]!)));
    after.forEach((a, i) => {
      const b = before[i]!;
      // The same connections (not reconnects), the AUTHs seen by the node, none refused.
      expect(a.rot).toEqual(expect.arrayContaining(b.rot));
      expect(a.calls).toBeGreaterThan(b.calls);
      expect(a.failed).toBe(b.failed);
    });
    client.disconnect();
  });
});
