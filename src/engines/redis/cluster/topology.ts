// Who serves which slot. Learned from CLUSTER SHARDS/SLOTS, corrected at once by every MOVED, and
// guarded by an epoch counter that each applied change bumps. A MOVED is first-hand news from the node
// that gave the slot away; a refresh may ask a node that has not heard yet (gossip takes a moment),
// so for a short while a MOVED patch wins over refresh results instead of flip-flopping with them.
//
// Nodes get small integer ids that are never reused while the agent runs; the slot table is a
// Uint16Array of them, so routing a command costs one array read and no string work.
//
// Only the cluster names nodes: the seeds (spec.uri) and what CLUSTER SHARDS/SLOTS of a node already
// known report. A MOVED/ASK carries an address anyone able to run a script can make up, so it is
// followed only to a node the current shape names (`named`); any other address waits for a refresh
// (`confirm`) and is never registered, dialled or sent credentials unless that refresh names it.
import { setTimeout as sleep } from 'node:timers/promises';
import { askAny } from './hung-nodes.js';
import { type ClusterShape, type NodeAddress, SLOT_COUNT, addressKey } from './shape.js';

export const NO_NODE = 0xffff;
const MIN_REFRESH_INTERVAL_MS = 100;
/** Longer than cluster gossip needs to spread a slot's new owner on a healthy network. */
const PATCH_TRUST_MS = 2000;

export interface NodeEntry {
  readonly id: number;
  readonly key: string;
  readonly address: NodeAddress;
}

/** How a refresh asks one node for the shape of the cluster. */
export type ShapeFetcher = (node: NodeEntry) => Promise<ClusterShape>;

export interface TopologyOptions {
  /** Where to start when nothing is known yet (spec.uri's host and port). */
  seeds: NodeAddress[];
  fetchShape: ShapeFetcher;
  /** Called after every applied change with the new epoch. */
  onChange?: (epoch: number) => void;
  onRefreshError?: (err: unknown) => void;
}

export class Topology {
  /** Bumped by every applied change (MOVED patch or refresh). */
  epoch = 0;
  private readonly owner = new Uint16Array(SLOT_COUNT).fill(NO_NODE);
  private readonly entries: NodeEntry[] = [];
  private readonly byKey = new Map<string, NodeEntry>();
  private masterIds: number[] = [];
  private replicaIds: number[] = [];
  private running: Promise<void> | undefined;
  private again = false;
  private lastRefreshAt = 0;
  /** Recent MOVED patches: slot → [node, when]; re-applied over refresh results while fresh. */
  private readonly patches = new Map<number, [number, number]>();
  private readonly seedIds: number[];
  /** Seeds and the nodes the latest applied shape names: the only nodes a redirect may lead to. */
  private namedIds: ReadonlySet<number>;
  /** Asked first by the next refresh: the node whose redirect asked for it knows first-hand. */
  private prefer = NO_NODE;

  constructor(private readonly opts: TopologyOptions) {
    this.seedIds = opts.seeds.map((s) => this.node(s).id);
    this.namedIds = new Set(this.seedIds);
  }

  /** The node serving `slot`, or NO_NODE when no refresh or MOVED has told us yet. */
  ownerOf(slot: number): number {
    return this.owner[slot]!;
  }

  entry(id: number): NodeEntry {
    return this.entries[id]!;
  }

  /** The id for an address the cluster (or spec.uri) named, registering it on first sight. */
  private node(address: NodeAddress): NodeEntry {
    const key = addressKey(address);
    let e = this.byKey.get(key);
    if (!e) {
      if (this.entries.length >= NO_NODE) throw new Error('too many cluster node addresses');
      e = { id: this.entries.length, key, address };
      this.entries.push(e);
      this.byKey.set(key, e);
    }
    return e;
  }

  /** Serving masters, ordered by the lowest slot each owns: a stable order for SCAN cursors. */
  masters(): readonly number[] {
    return this.masterIds;
  }

  /** Masters then replicas (for commands Redis says go to all nodes, like SCRIPT LOAD). */
  allNodes(): number[] {
    return [...this.masterIds, ...this.replicaIds];
  }

  /** The node at `address` if the cluster names it now; registers nothing (called on redirects only). */
  named(address: NodeAddress): number | undefined {
    const e = this.byKey.get(addressKey(address));
    return e && this.namedIds.has(e.id) ? e.id : undefined;
  }

  /**
   * The node at `address` once the cluster names it: refreshes (asking `from`, the node that sent
   * the redirect, first) unless the current shape names it already; undefined if it still does not.
   */
  async confirm(address: NodeAddress, from: number): Promise<number | undefined> {
    const id = this.named(address);
    if (id !== undefined) return id;
    this.prefer = from;
    await this.refresh();
    return this.named(address);
  }

  /** A MOVED reply to named node `id`: the slot lives there now. Takes effect at once; a refresh follows. */
  moved(slot: number, id: number): void {
    if (this.owner[slot] !== id) {
      this.owner[slot] = id;
      this.patches.set(slot, [id, Date.now()]);
      if (!this.masterIds.includes(id)) this.masterIds = this.orderMasters([...this.masterIds, id]);
      this.bump();
    }
    void this.refresh();
  }

  /**
   * Re-reads the whole shape from the cluster. Calls made while one runs share it and cause exactly
   * one more run afterwards, so a burst of MOVED replies costs at most two CLUSTER SHARDS round trips.
   */
  refresh(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = this.refreshLoop().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  /** The shape from whichever node known (at first: the seeds) answers first; rejects if none does. */
  async learn(): Promise<void> {
    this.apply(await this.fetchFromAnyNode());
  }

  private async refreshLoop(): Promise<void> {
    do {
      // While a node is down every failing command asks for a refresh: one per interval is plenty.
      const wait = this.lastRefreshAt + MIN_REFRESH_INTERVAL_MS - Date.now();
      if (wait > 0) await sleep(wait);
      this.lastRefreshAt = Date.now();
      this.again = false;
      try {
        this.apply(await this.fetchFromAnyNode());
      } catch (err) {
        this.opts.onRefreshError?.(err);
      }
    } while (this.again);
  }

  /**
   * Asks the preferred node, known masters, replicas, then seeds, in that order, and the first answer
   * wins (askAny): a silent node holds the refresh up for a short hedge, not the command timeout, and
   * any failure (unreachable, or an error such as an ACL refusal) moves on to the next node at once.
   */
  private fetchFromAnyNode(): Promise<ClusterShape> {
    const first = this.prefer === NO_NODE ? [] : [this.prefer];
    this.prefer = NO_NODE;
    const known = [...this.masterIds, ...this.replicaIds, ...this.entries.map((e) => e.id)];
    const order = [...new Set([...first, ...known])];
    if (order.length === 0) return Promise.reject(new Error('no cluster node address known'));
    return askAny(order, (id) => this.opts.fetchShape(this.entries[id]!), everyFailure);
  }

  /** Replaces the slot table with `shape`, then re-applies recent MOVED patches. */
  apply(shape: ClusterShape): void {
    const masters: number[] = [];
    const replicas: number[] = [];
    let changed = false;
    for (const shard of shape.shards) {
      const id = this.node(shard.master).id;
      masters.push(id);
      for (const r of shard.replicas) replicas.push(this.node(r).id);
      for (const [start, end] of shard.slots) {
        for (let s = Math.max(0, start); s <= Math.min(end, SLOT_COUNT - 1); s++) {
          if (this.owner[s] !== id) {
            this.owner[s] = id;
            changed = true;
          }
        }
      }
    }
    // Slots no shard claims (a shard failed and was left out) keep their last owner: commands then
    // reach a dead node, fail to connect and wait for the next refresh, instead of going nowhere.
    const now = Date.now();
    for (const [slot, [id, at]] of this.patches) {
      if (now - at > PATCH_TRUST_MS) {
        this.patches.delete(slot);
        continue;
      }
      if (this.owner[slot] !== id) {
        this.owner[slot] = id;
        changed = true;
      }
      if (!masters.includes(id)) masters.push(id);
    }
    const nextMasters = this.orderMasters(masters);
    const unassigned = (shape.unassigned ?? []).map((a) => this.node(a).id);
    this.namedIds = new Set([...this.seedIds, ...nextMasters, ...replicas, ...unassigned]);
    if (changed || !sameList(nextMasters, this.masterIds) || !sameList(replicas, this.replicaIds)) {
      this.masterIds = nextMasters;
      this.replicaIds = replicas;
      this.bump();
    }
  }

  private orderMasters(ids: number[]): number[] {
    const first = new Map<number, number>();
    for (let s = SLOT_COUNT - 1; s >= 0; s--) first.set(this.owner[s]!, s);
    return [...new Set(ids)].filter((id) => first.has(id)).sort((a, b) => first.get(a)! - first.get(b)!);
  }

  private bump(): void {
    this.epoch++;
    this.opts.onChange?.(this.epoch);
  }
}

/** Whatever one node fails with, another may answer the shape. */
const everyFailure = (): boolean => true;

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}
