// What a cluster looks like, as the cluster itself reports it: `CLUSTER SHARDS` (Redis ≥ 7) or the
// older `CLUSTER SLOTS`. Both decode into one ClusterShape, so the topology never cares which it got.
import { RespError, type RespValue } from '../reply-parser.js';

export const SLOT_COUNT = 16384;

export interface NodeAddress {
  host: string;
  port: number;
}

export interface Shard {
  /** Inclusive [start, end] slot ranges. */
  slots: [number, number][];
  master: NodeAddress;
  replicas: NodeAddress[];
}

export interface ClusterShape {
  shards: Shard[];
  /**
   * Nodes the cluster names that serve no slot yet (a new master being filled by resharding). They
   * route nothing, but an ASK may name one, and only nodes the cluster names are ever dialled.
   */
  unassigned?: NodeAddress[];
}

export function addressKey(a: NodeAddress): string {
  return a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** Parses `host:port` as found in MOVED/ASK errors (IPv6 hosts come bare: `::1:6379`). */
export function parseAddress(text: string): NodeAddress | undefined {
  const i = text.lastIndexOf(':');
  if (i <= 0) return undefined;
  const port = Number(text.slice(i + 1));
  if (!Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  return { host: text.slice(0, i).replace(/^\[|\]$/g, ''), port };
}

function text(v: RespValue | undefined): string | undefined {
  if (typeof v === 'string') return v;
  if (Buffer.isBuffer(v)) return v.toString('utf8');
  return undefined;
}

/** RESP2 renders maps as flat [key, value, ...] arrays. */
function asMap(v: RespValue | undefined): Map<string, RespValue> {
  const m = new Map<string, RespValue>();
  if (!Array.isArray(v)) return m;
  for (let i = 0; i + 1 < v.length; i += 2) {
    const k = text(v[i]);
    if (k !== undefined) m.set(k, v[i + 1]!);
  }
  return m;
}

function malformed(what: string): Error {
  return new Error(`unexpected ${what} reply shape`);
}

/**
 * `CLUSTER SHARDS`. `tls` picks `tls-port` over `port` (a node has both when it serves both). The
 * endpoint is the node's preferred one (`cluster-preferred-endpoint-type`), falling back to its IP.
 * Shards without slots (fresh nodes) serve nothing and go to `unassigned`; a failed master is kept
 * only if nothing better exists, since commands for its slots have nowhere else to go until a replica
 * is promoted.
 */
export function parseClusterShards(reply: RespValue, tls: boolean): ClusterShape {
  if (reply instanceof RespError) throw new Error(reply.message);
  if (!Array.isArray(reply)) throw malformed('CLUSTER SHARDS');
  const shards: Shard[] = [];
  const unassigned: NodeAddress[] = [];
  const addr = (n: Map<string, RespValue>): NodeAddress | undefined => {
    const port = Number(n.get(tls ? 'tls-port' : 'port') ?? n.get('port') ?? n.get('tls-port'));
    const endpoint = text(n.get('endpoint'));
    const host = endpoint && endpoint !== '?' ? endpoint : text(n.get('ip'));
    return host && port > 0 ? { host, port } : undefined;
  };
  for (const entry of reply) {
    const shard = asMap(entry);
    const flat = shard.get('slots');
    if (!Array.isArray(flat)) throw malformed('CLUSTER SHARDS');
    const slots: [number, number][] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) slots.push([Number(flat[i]), Number(flat[i + 1])]);
    const nodes = (Array.isArray(shard.get('nodes')) ? (shard.get('nodes') as RespValue[]) : []).map(asMap);
    if (slots.length === 0) {
      for (const n of nodes) {
        const a = addr(n);
        if (a) unassigned.push(a);
      }
      continue;
    }
    const healthy = (n: Map<string, RespValue>) => text(n.get('health')) === 'online';
    const masters = nodes.filter((n) => text(n.get('role')) === 'master');
    const master = masters.find(healthy) ?? masters[0];
    const masterAddr = master && addr(master);
    if (!masterAddr) continue;
    const replicas = nodes
      .filter((n) => n !== master && text(n.get('role')) !== 'master' && healthy(n))
      .map(addr)
      .filter((a): a is NodeAddress => a !== undefined);
    shards.push({ slots, master: masterAddr, replicas });
  }
  return { shards, unassigned };
}

/** `CLUSTER SLOTS`: one entry per slot range, `[start, end, master, ...replicas]`, node = `[host, port, id, ...]`. */
export function parseClusterSlots(reply: RespValue): ClusterShape {
  if (reply instanceof RespError) throw new Error(reply.message);
  if (!Array.isArray(reply)) throw malformed('CLUSTER SLOTS');
  const byMaster = new Map<string, Shard>();
  for (const range of reply) {
    if (!Array.isArray(range) || range.length < 3) throw malformed('CLUSTER SLOTS');
    const [start, end, ...nodes] = range;
    const addrs = nodes.map((n) => {
      if (!Array.isArray(n)) throw malformed('CLUSTER SLOTS');
      return { host: text(n[0]) ?? '', port: Number(n[1]) };
    });
    const master = addrs[0]!;
    const key = addressKey(master);
    const shard = byMaster.get(key) ?? { slots: [], master, replicas: addrs.slice(1) };
    shard.slots.push([Number(start), Number(end)]);
    byMaster.set(key, shard);
  }
  return { shards: [...byMaster.values()] };
}
