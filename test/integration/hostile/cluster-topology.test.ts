// Hostile client vs. the nodes a Redis Cluster names. The agent dials, and logs in with the
// Database's credentials at, whatever address the cluster's CLUSTER SHARDS gives a node; a person
// whose roles allow every command (ops) could make the cluster name an address of their choosing:
// CONFIG SET cluster-announce-tls-port (fanned out to every node), CLUSTER MEET, SETSLOT, FAILOVER...
// or a script calling them. Before the fix, CONFIG SET ran, and at the next topology refresh (any
// dropped connection, any MOVED) the agent dialled the attacker's listener and sent it AUTH with the
// database user's password. Played against the real 6-node TLS+ACL cluster through the real agent,
// its Database on `spec.tls.mode: insecure` (as a cluster whose certificates do not name its nodes,
// or a plaintext one, would be): the trap is a TLS listener with a certificate of its own. A role with
// allow.redisServerWide (rita's here) is trusted with all of it.
import { type Server, type TLSSocket, createServer } from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '../../../src/engines/redis/cluster/key-slot.js';
import { createCA, issueCertificate } from '../../../src/pki/ca.js';
import { peoplePolicy } from '../../support/redis.js';
import { type NodeView, type RedisCluster, clusterDatabaseDocs } from '../../support/redis-cluster.js';
import { type ClusterFixture, clusterAdmin, keyOn, startClusterFixture } from '../redis/cluster-fixture.js';
import { type Shown, exchange, pipeline } from './resp.js';

let f: ClusterFixture;
let masters: NodeView[];
let trap: Server;
let trapPort: number;
const heard: Buffer[] = [];
const sockets: TLSSocket[] = [];
const trapped: TLSSocket[] = [];

const REFUSED =
  /^-NOPERM drawbridge: .*, and this Database is a Redis Cluster, and the agent dials and sends the Database's credentials to the nodes the cluster names; commands that act on or show the whole server need a role with allow\.redisServerWide: true$/;

/** ops: every command, no allow.redisServerWide (peoplePolicy's admin); rita: the same with it. */
function docs(cluster: RedisCluster): object[] {
  const insecure = clusterDatabaseDocs(cluster).map((d) => {
    const doc = d as { kind: string; spec: { tls: object } };
    return doc.kind === 'Database' ? { ...doc, spec: { ...doc.spec, tls: { mode: 'insecure' } } } : d;
  });
  return [...insecure, ...peoplePolicy(), ...clusterAdmin('rita')];
}

beforeAll(async () => {
  f = await startClusterFixture(undefined, docs);
  masters = await f.cluster.masters();
  const ca = await createCA({ commonName: 'attacker CA' });
  const cert = await issueCertificate(ca, {
    commonName: 'attacker',
    ipAddresses: ['127.0.0.1'],
    usage: 'server',
  });
  trap = createServer({ cert: cert.certPem, key: cert.keyPem }, (s) => {
    trapped.push(s);
    s.on('data', (d: Buffer) => heard.push(d));
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => trap.listen(0, '127.0.0.1', resolve));
  const addr = trap.address();
  trapPort = typeof addr === 'object' && addr ? addr.port : 0;
});

afterAll(async () => {
  [...sockets, ...trapped].forEach((s) => s.destroy());
  await new Promise((r) => trap?.close(r));
  await f?.stop();
});

async function session(person: 'ops' | 'rita'): Promise<TLSSocket> {
  const s = await f.raw(person);
  sockets.push(s);
  return s;
}

/** The replies, or 'no reply' where the agent sits on them (as it did while logging in at the trap). */
async function replies(s: TLSSocket, commands: string[][]): Promise<Shown[] | 'no reply'> {
  const timeout = sleep(5000).then(() => 'no reply' as const);
  return Promise.race([exchange(s, pipeline(commands), commands.length), timeout]);
}

/** What the cluster's nodes themselves say: every node still at its own port, no node met. */
async function clusterUntouched(): Promise<void> {
  for (const port of f.cluster.ports) {
    const nodes = (await f.cluster.cli(port, ['CLUSTER', 'NODES'])).trim().split('\n');
    expect(nodes).toHaveLength(6);
    expect(nodes.join('\n')).not.toContain(`:${trapPort}`);
  }
}

/** A key hashing to `slot`. */
function keyInSlot(slot: number): string {
  for (let i = 0; ; i++) if (keySlot(Buffer.from(`moved:${i}`)) === slot) return `moved:${i}`;
}

describe('hostile: making the cluster name an attacker node', () => {
  it('CONFIG SET cluster-announce-tls-port, then CLUSTER SETSLOT for a MOVED: refused; the agent never dials the trap', async () => {
    const ops = await session('ops');
    const keys = masters.map((m) => keyOn(m, 'topo:'));
    expect(
      await replies(
        ops,
        keys.map((k) => ['SET', k, 'v']),
      ),
    ).toEqual(keys.map(() => 'OK'));
    // Every node (CONFIG SET goes to all of them) announces the trap's port from now on...
    const announce = await replies(ops, [['CONFIG', 'SET', 'cluster-announce-tls-port', String(trapPort)]]);
    await sleep(2500); // ...and gossip has spread it.
    // A slot handed to another master (each master hears it: CLUSTER goes to one in turn) answers
    // MOVED, which makes the agent re-read the shape: every master is now at the trap's address.
    const [x, y] = masters as [NodeView, NodeView];
    const slot = x.slots[0]![0];
    const setslot = await replies(
      ops,
      masters.map(() => ['CLUSTER', 'SETSLOT', String(slot), 'NODE', y.id]),
    );
    const moved = keyInSlot(slot);
    const after = await replies(ops, [['GET', moved], ...keys.map((k) => ['GET', k])]);
    await sleep(300);
    expect(Buffer.concat(heard).toString('latin1')).toBe('');
    expect(announce).toEqual([expect.stringMatching(REFUSED)]);
    expect(String((announce as Shown[])[0])).toContain('CONFIG SET changes the nodes');
    expect(setslot).toEqual(masters.map(() => expect.stringMatching(REFUSED)));
    expect(after).toEqual([null, ...keys.map(() => 'v')]);
    await clusterUntouched();
  });

  it('CLUSTER MEET/SETSLOT/FORGET/RESET/FAILOVER/..., CONFIG GET, MODULE LOAD: refused, audited as server_wide', async () => {
    const ops = await session('ops');
    const commands = [
      ['CLUSTER', 'MEET', '127.0.0.1', String(trapPort)],
      ['CLUSTER', 'SETSLOT', '0', 'STABLE'],
      ['CLUSTER', 'FORGET', 'f'.repeat(40)],
      ['CLUSTER', 'RESET', 'SOFT'],
      ['CLUSTER', 'ADDSLOTS', '0'],
      ['CLUSTER', 'ADDSLOTSRANGE', '0', '1'],
      ['CLUSTER', 'DELSLOTS', '0'],
      ['CLUSTER', 'DELSLOTSRANGE', '0', '1'],
      ['CLUSTER', 'FLUSHSLOTS'],
      ['CLUSTER', 'FAILOVER', 'TAKEOVER'],
      ['CLUSTER', 'REPLICATE', 'f'.repeat(40)],
      ['CLUSTER', 'BUMPEPOCH'],
      ['CLUSTER', 'SET-CONFIG-EPOCH', '1'],
      ['CONFIG', 'GET', 'masterauth'],
      ['MODULE', 'LOAD', '/nonexistent/module.so'],
    ];
    const out = (await replies(ops, commands)) as Shown[];
    for (const r of out) expect(r).toMatch(REFUSED);
    // Read-only views of the cluster stay with the command rules.
    expect(await replies(ops, [['CLUSTER', 'MYID']])).toEqual([expect.stringMatching(/^[0-9a-f]{40}$/)]);
    await sleep(300);
    const denied = (await f.agent.auditEvents()).filter(
      (e) => e.type === 'command.denied' && e.user === 'ops' && e.command === 'cluster|meet',
    );
    expect(denied).toHaveLength(1);
    expect(denied[0]!.reason).toMatch(/allow\.redisServerWide/);
    await clusterUntouched();
  });

  it('a script calling CLUSTER MEET: refused for a person allowed every command but not allow.redisServerWide', async () => {
    const ops = await session('ops');
    const meet = `return redis.call('CLUSTER', 'MEET', '127.0.0.1', ARGV[1])`;
    const [r] = (await replies(ops, [['EVAL', meet, '0', String(trapPort)]])) as Shown[];
    expect(r).toMatch(
      /^-NOPERM drawbridge: EVAL runs .*CLUSTER MEET.*needs allow\.redisServerWide; scripts and functions need a role with allow\.redisScripting: true/,
    );
    await sleep(300);
    await clusterUntouched();
    expect(Buffer.concat(heard).toString('latin1')).toBe('');
  });

  it('allow.redisServerWide: the cluster admin runs them', async () => {
    const rita = await session('rita');
    const [slot, config, script] = (await replies(rita, [
      ['CLUSTER', 'SETSLOT', '0', 'STABLE'],
      ['CONFIG', 'GET', 'maxmemory-policy'],
      ['EVAL', "return redis.call('CLUSTER', 'MYID')", '0'],
    ])) as Shown[];
    expect(slot).toBe('OK');
    expect(config).toEqual(['maxmemory-policy', 'noeviction']);
    expect(script).toMatch(/^[0-9a-f]{40}$/);
  });
});
